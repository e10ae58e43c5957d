//! Dropping root after the sockets are bound: chroot, then switch user.

use std::path::PathBuf;

use anyhow::Context;
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PrivilegeConfig {
    pub drop_privileges: bool,
    pub chroot_path: PathBuf,
    pub user: String,
}

impl Default for PrivilegeConfig {
    fn default() -> Self {
        Self {
            drop_privileges: false,
            chroot_path: PathBuf::from("."),
            user: "nobody".into(),
        }
    }
}

/// Chroot into `chroot_path` and become `user`, if configured. Call once,
/// after every socket is bound and every file the daemon needs is open.
pub fn drop_privileges(config: &PrivilegeConfig) -> anyhow::Result<()> {
    if !config.drop_privileges {
        return Ok(());
    }
    privdrop::PrivDrop::default()
        .chroot(&config.chroot_path)
        .user(&config.user)
        .apply()
        .with_context(|| {
            format!(
                "privileges: cannot chroot to {} and switch to user {:?} (is the daemon started as root, and do both exist?)",
                config.chroot_path.display(),
                config.user
            )
        })?;
    log::info!(
        "dropped privileges: chroot {}, user {}",
        config.chroot_path.display(),
        config.user
    );
    Ok(())
}
