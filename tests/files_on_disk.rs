//! What linehub leaves on disk: the store, its WAL and their directory are private to the
//! service user, and the systemd unit keeps it that way for everything else the daemon creates.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

#[tokio::test]
async fn the_store_its_wal_and_their_directory_are_readable_by_the_service_user_only() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state").join("linehub");
    let db = state.join("linehub.db");
    let store = linehub::store::Store::open(&db).unwrap();
    store.ensure_serials(vec!["tokyo".into()], 1).await.unwrap();
    let lock = linehub::store::DaemonLock::acquire(&db).unwrap();

    assert_eq!(mode(&state), 0o700, "the store's directory");
    assert_eq!(mode(&dir.path().join("state")), 0o700, "a directory created on the way");
    for file in ["linehub.db", "linehub.db-wal", "linehub.db-shm", "linehub.db.lock"] {
        assert_eq!(mode(&state.join(file)), 0o600, "{file}");
    }
    drop(lock);
}

#[test]
fn the_unit_sets_a_private_umask_and_room_for_thousands_of_connections() {
    let unit = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/linehub.service")).unwrap();
    let setting = |key: &str| -> Option<String> {
        unit.lines().find_map(|l| l.trim().strip_prefix(key)?.strip_prefix('=').map(|v| v.trim().to_string()))
    };
    assert_eq!(setting("UMask").as_deref(), Some("0077"), "{unit}");
    assert_eq!(setting("StateDirectoryMode").as_deref(), Some("0700"), "{unit}");
    let files: u64 = setting("LimitNOFILE").and_then(|v| v.split(':').next()?.parse().ok()).unwrap_or(0);
    assert!(files >= 8_192, "LimitNOFILE must fit a few thousand connections plus the store: {files}");
}
