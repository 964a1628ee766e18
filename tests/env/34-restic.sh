# restic (Debian package) for the snapshot_dir / restore_snapshot tests, which also read the
# repositories back with the restic CLI itself. Exports MTN_TEST_RESTIC (the binary).

apt_install restic
MTN_TEST_RESTIC="$(command -v restic)"
export MTN_TEST_RESTIC
