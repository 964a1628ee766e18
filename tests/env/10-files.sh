# Files capability: real logrotate and rsync (Debian) for behaviour comparisons, chattr
# (e2fsprogs) to make a directory immutable for the permission-denied test (tests run as root,
# where chmod does not deny anything).
apt_install logrotate rsync e2fsprogs gzip
MTN_TEST_LOGROTATE="$(command -v logrotate || echo /usr/sbin/logrotate)"
MTN_TEST_RSYNC="$(command -v rsync)"
export MTN_TEST_LOGROTATE MTN_TEST_RSYNC
