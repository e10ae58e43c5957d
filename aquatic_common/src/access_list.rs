//! Access lists: which info hashes a tracker serves.
//!
//! A file of 40-hex info hashes, one per line, `#` starting a comment. In
//! `allow` mode only listed hashes are served, in `deny` mode listed hashes
//! are refused. The list in use sits behind an `ArcSwap`, so a reload
//! (SIGUSR1) replaces it for every worker without a lock on the hot path, and
//! a broken file at reload leaves the old list in place.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use arc_swap::{ArcSwap, Cache};
use hashbrown::HashSet;
use serde::{Deserialize, Serialize};

use crate::InfoHash;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AccessListMode {
    /// Serve every info hash.
    #[default]
    Off,
    /// Serve only the info hashes in the file.
    Allow,
    /// Serve every info hash except those in the file.
    Deny,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct AccessListConfig {
    pub mode: AccessListMode,
    pub path: PathBuf,
}

/// A parsed access list file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessList(HashSet<InfoHash>);

impl AccessList {
    /// Parse the text of an access list file; an error names the line.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut set = HashSet::new();
        for (index, raw) in text.lines().enumerate() {
            let line = raw.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let hash = InfoHash::from_hex(line).with_context(|| {
                format!(
                    "line {}: expected 40 hexadecimal digits, found {:?}",
                    index + 1,
                    truncate_for_message(line)
                )
            })?;
            set.insert(hash);
        }
        Ok(Self(set))
    }

    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = fs::read_to_string(path)
            .with_context(|| format!("access list {}: cannot read", path.display()))?;
        Self::parse(&text).with_context(|| format!("access list {}", path.display()))
    }

    pub fn contains(&self, hash: &InfoHash) -> bool {
        self.0.contains(hash)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn allows(&self, mode: AccessListMode, hash: &InfoHash) -> bool {
        match mode {
            AccessListMode::Off => true,
            AccessListMode::Allow => self.contains(hash),
            AccessListMode::Deny => !self.contains(hash),
        }
    }
}

fn truncate_for_message(s: &str) -> String {
    s.chars().take(60).collect()
}

/// The access list shared by all workers of a daemon.
pub type SharedAccessList = Arc<ArcSwap<AccessList>>;

/// Load the configured list at start; with mode `off` the list is empty and
/// the path is not read.
pub fn create_shared(config: &AccessListConfig) -> anyhow::Result<SharedAccessList> {
    let list = match config.mode {
        AccessListMode::Off => AccessList::default(),
        AccessListMode::Allow | AccessListMode::Deny => {
            if config.path.as_os_str().is_empty() {
                anyhow::bail!(
                    "access_list.mode is {:?} but access_list.path is empty: set the path of the list file",
                    config.mode
                );
            }
            AccessList::load(&config.path)?
        }
    };
    crate::status::record_file_event(
        "access_list",
        Ok(match config.mode {
            AccessListMode::Off => "off".to_string(),
            mode => format!(
                "{mode:?} list of {} info hashes loaded at start from {}",
                list.len(),
                config.path.display()
            ),
        }),
    );
    Ok(Arc::new(ArcSwap::from_pointee(list)))
}

/// Reload the list from its file. On error the old list stays in use and the
/// error is returned for logging.
pub fn reload(config: &AccessListConfig, shared: &SharedAccessList) -> anyhow::Result<usize> {
    if config.mode == AccessListMode::Off {
        return Ok(0);
    }
    let list = AccessList::load(&config.path)?;
    let len = list.len();
    shared.store(Arc::new(list));
    Ok(len)
}

/// [`reload`] on SIGUSR1, with the outcome logged: the number of info
/// hashes, or the error (the old list staying in use).
pub fn reload_and_log(config: &AccessListConfig, shared: &SharedAccessList) {
    let result = match reload(config, shared) {
        Ok(n) => {
            log::info!("access list reloaded: {n} info hashes");
            Ok(format!("reloaded: {n} info hashes"))
        }
        Err(err) => {
            log::error!("access list reload failed, keeping the old list: {err:#}");
            Err(format!("reload failed, the old list stays: {err:#}"))
        }
    };
    crate::status::record_file_event("access_list", result);
}

/// A per-worker view of the shared list: checking it costs no atomic
/// reference count increment unless the list has been replaced.
pub struct AccessListCache {
    mode: AccessListMode,
    cache: Cache<SharedAccessList, Arc<AccessList>>,
}

impl AccessListCache {
    pub fn new(mode: AccessListMode, shared: SharedAccessList) -> Self {
        Self {
            mode,
            cache: Cache::new(shared),
        }
    }

    pub fn allows(&mut self, hash: &InfoHash) -> bool {
        if self.mode == AccessListMode::Off {
            return true;
        }
        self.cache.load().allows(self.mode, hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    const A: &str = "0123456789abcdef0123456789abcdef01234567";
    const B: &str = "ffffffffffffffffffffffffffffffffffffffff";

    #[test]
    fn parse_with_comments_and_blank_lines() {
        let text = format!("# header\n\n{A}\n  {B}  # trailing comment\n");
        let list = AccessList::parse(&text).unwrap();
        assert_eq!(list.len(), 2);
        assert!(list.contains(&InfoHash::from_hex(A).unwrap()));
    }

    #[test]
    fn parse_error_names_line() {
        let text = format!("{A}\nnot-a-hash\n");
        let err = format!("{:#}", AccessList::parse(&text).unwrap_err());
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn modes() {
        let list = AccessList::parse(A).unwrap();
        let a = InfoHash::from_hex(A).unwrap();
        let b = InfoHash::from_hex(B).unwrap();
        assert!(list.allows(AccessListMode::Off, &b));
        assert!(list.allows(AccessListMode::Allow, &a));
        assert!(!list.allows(AccessListMode::Allow, &b));
        assert!(!list.allows(AccessListMode::Deny, &a));
        assert!(list.allows(AccessListMode::Deny, &b));
    }

    #[test]
    fn reload_keeps_old_list_on_error() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(file, "{A}").unwrap();
        let config = AccessListConfig {
            mode: AccessListMode::Allow,
            path: file.path().to_owned(),
        };
        let shared = create_shared(&config).unwrap();
        let mut cache = AccessListCache::new(config.mode, shared.clone());
        let a = InfoHash::from_hex(A).unwrap();
        let b = InfoHash::from_hex(B).unwrap();
        assert!(cache.allows(&a));

        std::fs::write(file.path(), "garbage\n").unwrap();
        assert!(reload(&config, &shared).is_err());
        assert!(cache.allows(&a));

        std::fs::write(file.path(), format!("{B}\n")).unwrap();
        assert_eq!(reload(&config, &shared).unwrap(), 1);
        assert!(!cache.allows(&a));
        assert!(cache.allows(&b));
    }

    #[test]
    fn allow_mode_without_path_is_an_error() {
        let config = AccessListConfig {
            mode: AccessListMode::Allow,
            path: PathBuf::new(),
        };
        assert!(create_shared(&config).is_err());
    }
}
