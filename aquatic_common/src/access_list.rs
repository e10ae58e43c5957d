//! Access lists: which info hashes a tracker serves.
//!
//! A file of 40-hex info hashes, one per line, `#` starting a comment. In
//! `allow` mode only listed hashes are served, in `deny` mode listed hashes
//! are refused. Loading, reloading (SIGUSR1) and sharing with the workers
//! are [`crate::list_file`]'s, as for the IP filter.

use anyhow::Context;
use hashbrown::HashSet;

use crate::InfoHash;
use crate::list_file::{self, ListCache, ListFile, Lists};

pub use crate::list_file::{ListConfig as AccessListConfig, ListMode as AccessListMode};

/// A parsed access list file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessList(HashSet<InfoHash>);

impl ListFile for AccessList {
    type Key = InfoHash;
    const SECTION: &'static str = "access_list";
    const NAME: &'static str = "access list";
    const ENTRIES: &'static str = "info hashes";

    fn parse(text: &str) -> anyhow::Result<Self> {
        let mut set = HashSet::new();
        for (number, line) in list_file::entries(text) {
            let hash = InfoHash::from_hex(line).with_context(|| {
                format!(
                    "line {number}: expected 40 hexadecimal digits, found {:?}",
                    list_file::truncate_for_message(line)
                )
            })?;
            set.insert(hash);
        }
        Ok(Self(set))
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn contains(&self, hash: &InfoHash) -> bool {
        self.0.contains(hash)
    }
}

/// A socket worker's view of the access list.
pub type AccessListCache = ListCache<AccessList>;
/// The daemon's access list, loaded at start and reloaded on SIGUSR1.
pub type AccessLists = Lists<AccessList>;

impl AccessListCache {
    /// Whether announces for `hash` are served.
    pub fn allows(&mut self, hash: &InfoHash) -> bool {
        self.passes(hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::path::PathBuf;

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
        assert!(list.passes(AccessListMode::Off, &b));
        assert!(list.passes(AccessListMode::Allow, &a));
        assert!(!list.passes(AccessListMode::Allow, &b));
        assert!(!list.passes(AccessListMode::Deny, &a));
        assert!(list.passes(AccessListMode::Deny, &b));
    }

    #[test]
    fn reload_keeps_old_list_on_error() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(file, "{A}").unwrap();
        let config = AccessListConfig {
            mode: AccessListMode::Allow,
            path: file.path().to_owned(),
        };
        let shared = list_file::create_shared::<AccessList>(&config).unwrap();
        let mut cache = AccessListCache::new(config.mode, shared.clone());
        let a = InfoHash::from_hex(A).unwrap();
        let b = InfoHash::from_hex(B).unwrap();
        assert!(cache.allows(&a));

        std::fs::write(file.path(), "garbage\n").unwrap();
        assert!(list_file::reload(&config, &shared).is_err());
        assert!(cache.allows(&a));

        std::fs::write(file.path(), format!("{B}\n")).unwrap();
        assert_eq!(list_file::reload(&config, &shared).unwrap(), 1);
        assert!(!cache.allows(&a));
        assert!(cache.allows(&b));
    }

    #[test]
    fn allow_mode_without_path_is_an_error() {
        let config = AccessListConfig {
            mode: AccessListMode::Allow,
            path: PathBuf::new(),
        };
        assert!(AccessLists::load(&config).is_err());
    }
}
