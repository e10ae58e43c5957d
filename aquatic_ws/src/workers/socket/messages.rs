//! A connection's traffic: the upgrade, then reading WebSocket messages
//! (a bounded number per round), turning them into requests for the
//! shards, and writing messages back (flushed once per round).

use std::io::{ErrorKind, Read, Write};

use aquatic_common::request_loop::shard_of;
use aquatic_common::{InfoHash, IpVersion};
use aquatic_ws_protocol::{Action, ErrorResponse, InMessage, OutMessage, ScrapeResponse};
use tungstenite::protocol::Role;
use tungstenite::protocol::frame::CloseFrame;
use tungstenite::{Message, WebSocket};

use super::framing::{close_code, close_reason, close_text};
use super::upgrade::{AfterResponse, Handshake, HandshakeRules};
use super::{MESSAGES_PER_ROUND, Outcome, Phase, SocketWorker};
use crate::common::{
    CloseReason, ConnectionRef, ErrorReason, FAILURE_ADDRESS_REFUSED, FAILURE_BINARY,
    FAILURE_NOT_ALLOWED, FAILURE_RATE_LIMITED, FAILURE_TOO_MANY_SCRAPE_HASHES,
    FAILURE_TOO_MANY_SCRAPES, FAILURE_TOO_MANY_TORRENTS, RequestMessage, SwarmRequest, add,
};

impl SocketWorker {
    pub(super) fn on_event(&mut self, key: usize) -> Outcome {
        let Some(connection) = self.connections.get_mut(key) else {
            return Outcome::Keep;
        };
        match connection.phase {
            Phase::Handshake(..) => self.handshake(key),
            Phase::Open(_) => {
                let outcome = self.read_messages(key);
                if let Outcome::Keep = outcome {
                    // Writable again, or pongs queued by reading.
                    self.mark_dirty(key);
                }
                outcome
            }
            Phase::Switching => Outcome::Keep,
        }
    }

    pub(super) fn mark_dirty(&mut self, key: usize) {
        if let Some(connection) = self.connections.get_mut(key) {
            if !connection.dirty {
                connection.dirty = true;
                self.dirty.push(key);
            }
        }
    }

    /// Read the upgrade request, answer it, and switch to WebSocket.
    fn handshake(&mut self, key: usize) -> Outcome {
        let rules = HandshakeRules {
            max_head: self.config.network.max_request_head_size,
            proxy_header: &self.config.network.reverse_proxy_ip_header,
            trusted_proxies: self.budget.trusted_proxies(),
            allowed_hosts: &self.config.network.allowed_hosts,
        };
        let Some(connection) = self.connections.get_mut(key) else {
            return Outcome::Keep;
        };
        let Phase::Handshake(stream, handshake) = &mut connection.phase else {
            return Outcome::Keep;
        };
        if let Some(buf) = handshake.read_buf() {
            let limit = Handshake::read_limit(&rules);
            loop {
                match stream.read(&mut self.chunk) {
                    Ok(0) => return Outcome::Close(CloseReason::Client),
                    Ok(n) => {
                        add(&self.stats.tcp.bytes_received, n as u64);
                        buf.extend_from_slice(self.chunk.get(..n).unwrap_or_default());
                        if buf.len() > limit {
                            break;
                        }
                    }
                    Err(err) if err.kind() == ErrorKind::WouldBlock => break,
                    Err(err) if err.kind() == ErrorKind::Interrupted => continue,
                    Err(_) => return Outcome::Close(CloseReason::Client),
                }
            }
            if !handshake.decide(&rules) {
                return Outcome::Keep;
            }
            if handshake.is_health_check() {
                add(&self.stats.health_checks, 1);
            }
            if handshake.is_wrong_host() {
                self.defences.count_wrong_host();
            }
            if let Some(ip) = handshake.forwarded_client()
                && !self.defences.admits(ip)
            {
                handshake.refuse_forwarded();
            }
        }

        // Write the answer.
        loop {
            let pending = handshake.output();
            if pending.is_empty() {
                break;
            }
            match stream.write(pending) {
                Ok(0) => return Outcome::Close(CloseReason::Client),
                Ok(n) => handshake.wrote(n),
                Err(err) if err.kind() == ErrorKind::WouldBlock => return Outcome::Keep,
                Err(err) if err.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Outcome::Close(CloseReason::Client),
            }
        }
        match stream.flush() {
            Ok(()) => {}
            Err(err) if err.kind() == ErrorKind::WouldBlock => return Outcome::Keep,
            Err(_) => return Outcome::Close(CloseReason::Client),
        }
        add(&self.stats.tcp.bytes_sent, handshake.response_len() as u64);

        let Phase::Handshake(stream, handshake) =
            std::mem::replace(&mut connection.phase, Phase::Switching)
        else {
            return Outcome::Keep;
        };
        match handshake.finish() {
            AfterResponse::Upgrade { client_ip, tail } => {
                connection.ip_version = IpVersion::of(client_ip);
                connection.client_ip = client_ip;
                connection.source = self.config.source_budgets.prefixes().of(client_ip);
                connection.phase = Phase::Open(Box::new(WebSocket::from_partially_read(
                    stream,
                    tail,
                    Role::Server,
                    Some(self.ws_config),
                )));
                connection.session.received(self.now);
                // Messages may have come with the request.
                self.read_messages(key)
            }
            AfterResponse::Close(reason) => Outcome::Close(reason),
        }
    }

    /// Read and handle the messages available, at most
    /// `MESSAGES_PER_ROUND`; past that the connection goes on the backlog.
    pub(super) fn read_messages(&mut self, key: usize) -> Outcome {
        for _ in 0..MESSAGES_PER_ROUND {
            let Some(connection) = self.connections.get_mut(key) else {
                return Outcome::Keep;
            };
            let Phase::Open(ws) = &mut connection.phase else {
                return Outcome::Keep;
            };
            let message = match ws.read() {
                Ok(message) => message,
                Err(tungstenite::Error::Io(err)) if err.kind() == ErrorKind::WouldBlock => {
                    return Outcome::Keep;
                }
                Err(tungstenite::Error::Io(err)) if err.kind() == ErrorKind::Interrupted => {
                    continue;
                }
                Err(err) => {
                    if let Some(code) = close_code(&err) {
                        // Best effort: the close frame, then the close.
                        let frame = CloseFrame {
                            code,
                            reason: close_text(code).into(),
                        };
                        let _ = ws.close(Some(frame));
                        let _ = ws.flush();
                    }
                    return Outcome::Close(close_reason(&err));
                }
            };
            connection.session.received(self.now);
            match message {
                Message::Text(text) => {
                    add(&self.stats.tcp.bytes_received, text.len() as u64);
                    self.scratch.clear();
                    self.scratch.extend_from_slice(text.as_bytes());
                    if let Outcome::Close(reason) = self.on_text(key) {
                        return Outcome::Close(reason);
                    }
                }
                Message::Binary(data) => {
                    add(&self.stats.tcp.bytes_received, data.len() as u64);
                    let failure = error_message(FAILURE_BINARY, None, None);
                    if let Outcome::Close(reason) = self.send(key, &failure) {
                        return Outcome::Close(reason);
                    }
                }
                // tungstenite queues the pong or the close reply itself;
                // after a close, reading ends with ConnectionClosed.
                Message::Ping(_) | Message::Pong(_) | Message::Close(_) | Message::Frame(_) => {
                    self.mark_dirty(key);
                }
            }
        }
        if let Some(connection) = self.connections.get_mut(key) {
            if !connection.backlogged {
                connection.backlogged = true;
                self.backlog.push((key, connection.generation));
            }
        }
        Outcome::Keep
    }

    /// Handle the text message in `self.scratch`.
    fn on_text(&mut self, key: usize) -> Outcome {
        let message = match InMessage::from_json(&mut self.scratch) {
            Ok(message) => message,
            Err(err) => return self.send(key, &OutMessage::Error(ErrorResponse::from(err))),
        };
        let Some(connection) = self.connections.get(key) else {
            return Outcome::Keep;
        };
        let from = self.connection_ref(key, connection.generation);
        let shards = self.batches.len();
        let (shard, request) = match message {
            InMessage::Announce(request) => {
                add(&self.stats.requests_announce, 1);
                self.stats.tcp.clients.count(&request.peer_id);
                let hash = request.info_hash;
                // The filter may have been reloaded since the connection
                // was accepted.
                if !self.defences.admits(connection.client_ip) {
                    let failure =
                        error_message(FAILURE_ADDRESS_REFUSED, Some(Action::Announce), Some(hash));
                    return self.send(key, &failure);
                }
                if !self.defences.within_rate(connection.client_ip) {
                    let failure =
                        error_message(FAILURE_RATE_LIMITED, Some(Action::Announce), Some(hash));
                    return self.send(key, &failure);
                }
                if !self.access_list.allows(&hash) {
                    let failure =
                        error_message(FAILURE_NOT_ALLOWED, Some(Action::Announce), Some(hash));
                    return self.send(key, &failure);
                }
                let max_torrents = self.config.protocol.max_torrents_per_connection;
                let Some(connection) = self.connections.get_mut(key) else {
                    return Outcome::Keep;
                };
                let joined = connection.session.announce(
                    hash,
                    request.peer_id,
                    request.event,
                    !request.offers.is_empty(),
                    max_torrents,
                );
                if joined.is_err() {
                    let failure = error_message(
                        FAILURE_TOO_MANY_TORRENTS,
                        Some(Action::Announce),
                        Some(hash),
                    );
                    return self.send(key, &failure);
                }
                (shard_of(&hash, shards), SwarmRequest::Announce(request))
            }
            InMessage::Answer(request) => {
                add(&self.stats.requests_answer, 1);
                (
                    shard_of(&request.info_hash, shards),
                    SwarmRequest::Answer(request),
                )
            }
            InMessage::Scrape(mut request) => {
                add(&self.stats.requests_scrape, 1);
                if !self.defences.admits(connection.client_ip) {
                    let failure =
                        error_message(FAILURE_ADDRESS_REFUSED, Some(Action::Scrape), None);
                    return self.send(key, &failure);
                }
                if !self.defences.within_rate(connection.client_ip) {
                    let failure = error_message(FAILURE_RATE_LIMITED, Some(Action::Scrape), None);
                    return self.send(key, &failure);
                }
                return self.scrape(key, from, &mut request.info_hashes);
            }
        };
        self.queue(shard, key, from, request);
        Outcome::Keep
    }

    /// Put a request of connection `key` into shard `shard`'s batch.
    fn queue(&mut self, shard: usize, key: usize, from: ConnectionRef, request: SwarmRequest) {
        let Some(connection) = self.connections.get(key) else {
            return;
        };
        if let Some(batch) = self.batches.get_mut(shard) {
            batch.push(RequestMessage {
                from,
                ip_version: connection.ip_version,
                source: connection.source,
                request,
            });
        }
    }

    fn scrape(&mut self, key: usize, from: ConnectionRef, hashes: &mut Vec<InfoHash>) -> Outcome {
        if hashes.len() > self.config.protocol.max_scrape_torrents {
            let failure = error_message(FAILURE_TOO_MANY_SCRAPE_HASHES, Some(Action::Scrape), None);
            return self.send(key, &failure);
        }
        hashes.sort_unstable();
        hashes.dedup();
        let shards = self.batches.len();
        let mut parts: Vec<Vec<InfoHash>> = (0..shards).map(|_| Vec::new()).collect();
        for hash in hashes.drain(..) {
            if let Some(part) = parts.get_mut(shard_of(&hash, shards)) {
                part.push(hash);
            }
        }
        let parts_left = parts.iter().filter(|p| !p.is_empty()).count();
        if parts_left == 0 {
            add(&self.stats.responses_scrape, 1);
            let empty = OutMessage::ScrapeResponse(ScrapeResponse::default());
            return self.send(key, &empty);
        }
        let Some(connection) = self.connections.get_mut(key) else {
            return Outcome::Keep;
        };
        let Some(scrape_id) = connection.session.begin_scrape(parts_left) else {
            let failure = error_message(FAILURE_TOO_MANY_SCRAPES, Some(Action::Scrape), None);
            return self.send(key, &failure);
        };
        for (shard, info_hashes) in parts.into_iter().enumerate() {
            if !info_hashes.is_empty() {
                let request = SwarmRequest::Scrape {
                    scrape_id,
                    info_hashes,
                };
                self.queue(shard, key, from, request);
            }
        }
        Outcome::Keep
    }

    /// Write a message to a connection's WebSocket (flushed at the end of
    /// the round), counting it.
    pub(super) fn send(&mut self, key: usize, message: &OutMessage) -> Outcome {
        let counters = &self.stats;
        match message {
            OutMessage::AnnounceResponse(_) => add(&counters.responses_announce, 1),
            OutMessage::Offer(_) => add(&counters.offers_relayed, 1),
            OutMessage::Answer(_) => add(&counters.answers_relayed, 1),
            OutMessage::ScrapeResponse(_) => {} // counted where complete
            OutMessage::Error(e) => {
                counters.count_error(ErrorReason::of_failure(&e.failure_reason))
            }
        }
        let Some(connection) = self.connections.get_mut(key) else {
            return Outcome::Keep;
        };
        let Phase::Open(ws) = &mut connection.phase else {
            return Outcome::Keep;
        };
        let mut json = Vec::with_capacity(128);
        message.write_json(&mut json);
        add(&counters.tcp.bytes_sent, json.len() as u64);
        // The writer produces UTF-8 only; should it ever not, skip it.
        let Ok(text) = String::from_utf8(json) else {
            return Outcome::Keep;
        };
        match ws.write(Message::text(text)) {
            Ok(()) => {}
            Err(tungstenite::Error::Io(err)) if err.kind() == ErrorKind::WouldBlock => {}
            Err(err) => return Outcome::Close(close_reason(&err)),
        }
        if !connection.dirty {
            connection.dirty = true;
            self.dirty.push(key);
        }
        Outcome::Keep
    }

    /// Flush every connection written to in this round.
    pub(super) fn flush_dirty(&mut self) {
        let dirty = std::mem::take(&mut self.dirty);
        for &key in &dirty {
            let Some(connection) = self.connections.get_mut(key) else {
                continue;
            };
            connection.dirty = false;
            let Phase::Open(ws) = &mut connection.phase else {
                continue;
            };
            match ws.flush() {
                Ok(()) => {}
                // The rest goes out at the next writable event.
                Err(tungstenite::Error::Io(err)) if err.kind() == ErrorKind::WouldBlock => {}
                Err(err) => {
                    let reason = close_reason(&err);
                    self.close(key, reason);
                }
            }
        }
        self.dirty = dirty;
        self.dirty.clear();
    }
}

pub(super) fn error_message(
    reason: &'static str,
    action: Option<Action>,
    info_hash: Option<InfoHash>,
) -> OutMessage {
    OutMessage::Error(ErrorResponse {
        failure_reason: reason.into(),
        action,
        info_hash,
    })
}
