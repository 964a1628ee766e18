# The procedures tests read backups with the standard tools: sqlite3, gzip, sha256sum.
apt_install sqlite3 gzip coreutils
