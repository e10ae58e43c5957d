//! Lists an operator keeps in a file and reloads on SIGUSR1: the access
//! list (info hashes, [`crate::access_list`]) and the IP filter (addresses
//! and ranges, [`crate::ip_filter`]).
//!
//! Both work alike: `mode = "off" | "allow" | "deny"` and a `path`; the
//! file is read at start (a broken one stops the start, naming the line)
//! and on every reload (a broken one keeps the old list in use and says
//! why, naming the line). The list in use sits behind an `ArcSwap`, so a
//! reload replaces it for every worker without a lock on the hot path.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use arc_swap::{ArcSwap, Cache};
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ListMode {
    /// Everything passes; the file is not read.
    #[default]
    Off,
    /// Only what the file lists passes.
    Allow,
    /// Everything passes except what the file lists.
    Deny,
}

/// A `[access_list]` or `[ip_filter]` section.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct ListConfig {
    pub mode: ListMode,
    pub path: PathBuf,
}

/// What a list file holds.
pub trait ListFile: Default + Send + Sync + 'static {
    /// What is looked up in the list.
    type Key: ?Sized;
    /// The config section, also the key of its status-page event:
    /// `"access_list"`.
    const SECTION: &'static str;
    /// For log lines: `"access list"`.
    const NAME: &'static str;
    /// What its entries are, plural: `"info hashes"`.
    const ENTRIES: &'static str;

    /// Parse a file's text; an error names the line.
    fn parse(text: &str) -> anyhow::Result<Self>;
    fn len(&self) -> usize;
    fn contains(&self, key: &Self::Key) -> bool;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn load(path: &Path) -> anyhow::Result<Self> {
        let text = fs::read_to_string(path)
            .with_context(|| format!("{} {}: cannot read", Self::NAME, path.display()))?;
        Self::parse(&text).with_context(|| format!("{} {}", Self::NAME, path.display()))
    }

    fn passes(&self, mode: ListMode, key: &Self::Key) -> bool {
        match mode {
            ListMode::Off => true,
            ListMode::Allow => self.contains(key),
            ListMode::Deny => !self.contains(key),
        }
    }
}

/// Each non-empty line of a list file with its number, comments (from
/// `#`) and surrounding blanks removed.
pub fn entries(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines().enumerate().filter_map(|(index, raw)| {
        let line = raw.split('#').next().unwrap_or("").trim();
        (!line.is_empty()).then_some((index + 1, line))
    })
}

/// A line's text for an error message, at most 60 characters.
pub fn truncate_for_message(s: &str) -> String {
    s.chars().take(60).collect()
}

/// The list shared by all workers of a daemon.
pub type Shared<T> = Arc<ArcSwap<T>>;

/// Load the configured list at start; with mode `off` the list is empty and
/// the path is not read.
pub fn create_shared<T: ListFile>(config: &ListConfig) -> anyhow::Result<Shared<T>> {
    let list = match config.mode {
        ListMode::Off => T::default(),
        ListMode::Allow | ListMode::Deny => {
            if config.path.as_os_str().is_empty() {
                anyhow::bail!(
                    "{0}.mode is {1:?} but {0}.path is empty: set the path of the list file",
                    T::SECTION,
                    config.mode
                );
            }
            T::load(&config.path)?
        }
    };
    if config.mode != ListMode::Off {
        crate::status::record_list_size(T::SECTION, list.len());
    }
    crate::status::record_file_event(
        T::SECTION,
        Ok(match config.mode {
            ListMode::Off => "off".to_string(),
            mode => format!(
                "{mode:?} list of {} {} loaded at start from {}",
                list.len(),
                T::ENTRIES,
                config.path.display()
            ),
        }),
    );
    Ok(Arc::new(ArcSwap::from_pointee(list)))
}

/// Reload the list from its file. On error the old list stays in use and the
/// error is returned for logging.
pub fn reload<T: ListFile>(config: &ListConfig, shared: &Shared<T>) -> anyhow::Result<usize> {
    if config.mode == ListMode::Off {
        return Ok(0);
    }
    let list = T::load(&config.path)?;
    let len = list.len();
    shared.store(Arc::new(list));
    crate::status::record_list_size(T::SECTION, len);
    Ok(len)
}

/// [`reload`] on SIGUSR1, with the outcome logged and shown on the status
/// page: the number of entries, or the error (the old list staying in use).
pub fn reload_and_log<T: ListFile>(config: &ListConfig, shared: &Shared<T>) {
    if config.mode == ListMode::Off {
        return;
    }
    let result = match reload(config, shared) {
        Ok(n) => {
            log::info!("{} reloaded: {n} {}", T::NAME, T::ENTRIES);
            Ok(format!("reloaded: {n} {}", T::ENTRIES))
        }
        Err(err) => {
            log::error!("{} reload failed, keeping the old list: {err:#}", T::NAME);
            Err(format!("reload failed, the old list stays: {err:#}"))
        }
    };
    crate::status::record_file_event(T::SECTION, result);
}

/// A per-worker view of a shared list: checking it costs no atomic
/// reference count increment unless the list has been replaced.
pub struct ListCache<T: ListFile> {
    mode: ListMode,
    cache: Cache<Shared<T>, Arc<T>>,
}

impl<T: ListFile> ListCache<T> {
    pub fn new(mode: ListMode, shared: Shared<T>) -> Self {
        Self {
            mode,
            cache: Cache::new(shared),
        }
    }

    /// Whether `key` passes the list in its mode.
    pub fn passes(&mut self, key: &T::Key) -> bool {
        if self.mode == ListMode::Off {
            return true;
        }
        self.cache.load().passes(self.mode, key)
    }
}

/// A config's list and a cache of it for each worker.
pub struct Lists<T: ListFile> {
    config: ListConfig,
    shared: Shared<T>,
}

impl<T: ListFile> Lists<T> {
    pub fn load(config: &ListConfig) -> anyhow::Result<Self> {
        Ok(Self {
            config: config.clone(),
            shared: create_shared(config)?,
        })
    }

    pub fn cache(&self) -> ListCache<T> {
        ListCache::new(self.config.mode, self.shared.clone())
    }

    pub fn reload_and_log(&self) {
        reload_and_log(&self.config, &self.shared);
    }
}
