# A private OpenSSH server for the sftp:// storage tests: its own config, host key and port on
# 127.0.0.1, a dedicated user `mtnsftp` (created when missing) who may only use internal-sftp,
# and throwaway client keys (one plain, one with a passphrase). Also the zstd CLI, which the
# compression tests read outputs back with.
# Exports MTN_TEST_SFTP_HOST, _PORT, _USER, _DIR (the user's writable folder, as a local and a
# server path), _KEY, _KEY_ENC, _KEY_PASSPHRASE, _PASSWORD, _KNOWN_HOSTS, _HOST_FP (SHA256:...),
# _OTHER_KEY (a key the server does not know), _CONFIG (the sshd config, so a test can start a
# disposable server of its own with `sshd -D -f CONF -p PORT -o PidFile=...`).

apt_install openssh-server openssh-client zstd

SFTP_DIR="$MTN_TEST_TMP/sftp"
mkdir -p "$SFTP_DIR/keys" "$SFTP_DIR/data" /run/sshd
chmod 755 "$SFTP_DIR"
if ! id mtnsftp >/dev/null 2>&1; then
  useradd -M -d "$SFTP_DIR/data" -s /usr/sbin/nologin mtnsftp
fi
# A set password unlocks the account (sshd with UsePAM no refuses locked accounts even with keys).
# One random password per machine, kept in the test cache: two test runs at once (two checkouts)
# share the system user, and a fresh password per run would lock the other run out.
pw_file="$MTN_TEST_ENV/sftp-password"
if [ ! -s "$pw_file" ]; then
  (umask 077 && head -c 9 /dev/urandom | od -An -tx1 | tr -d ' \n' | sed 's/^/pw-/' >"$pw_file")
fi
export MTN_TEST_SFTP_PASSWORD="$(cat "$pw_file")"
echo "mtnsftp:$MTN_TEST_SFTP_PASSWORD" | chpasswd
chown mtnsftp "$SFTP_DIR/data"

ssh-keygen -q -t ed25519 -N '' -C mtn-test-host -f "$SFTP_DIR/ssh_host_ed25519_key"
ssh-keygen -q -t ed25519 -N '' -C mtn-test-client -f "$SFTP_DIR/client_key"
export MTN_TEST_SFTP_KEY_PASSPHRASE="phrase-$(head -c 6 /dev/urandom | od -An -tx1 | tr -d ' \n')"
ssh-keygen -q -t ed25519 -N "$MTN_TEST_SFTP_KEY_PASSPHRASE" -C mtn-test-enc -f "$SFTP_DIR/client_key_enc"
ssh-keygen -q -t ed25519 -N '' -C mtn-test-stranger -f "$SFTP_DIR/other_key"
cat "$SFTP_DIR/client_key.pub" "$SFTP_DIR/client_key_enc.pub" >"$SFTP_DIR/keys/mtnsftp"

SFTP_PORT=$(free_port)
sed -e "s|@DIR@|$SFTP_DIR|g" -e "s|^Port .*|Port $SFTP_PORT|" -e '/ChrootDirectory/d' \
  "$MTN_REPO/tests/env/sshd_config.in" >"$SFTP_DIR/sshd_config"
/usr/sbin/sshd -t -f "$SFTP_DIR/sshd_config"
/usr/sbin/sshd -D -f "$SFTP_DIR/sshd_config" -E "$SFTP_DIR/sshd.log" &
export MTN_TEST_PIDS="$MTN_TEST_PIDS $!"
wait_port 127.0.0.1 "$SFTP_PORT" 20

echo "[127.0.0.1]:$SFTP_PORT $(cut -d' ' -f1,2 "$SFTP_DIR/ssh_host_ed25519_key.pub")" >"$SFTP_DIR/known_hosts"
export MTN_TEST_SFTP_HOST=127.0.0.1
export MTN_TEST_SFTP_PORT=$SFTP_PORT
export MTN_TEST_SFTP_USER=mtnsftp
export MTN_TEST_SFTP_DIR="$SFTP_DIR/data"
export MTN_TEST_SFTP_KEY="$SFTP_DIR/client_key"
export MTN_TEST_SFTP_KEY_ENC="$SFTP_DIR/client_key_enc"
export MTN_TEST_SFTP_OTHER_KEY="$SFTP_DIR/other_key"
export MTN_TEST_SFTP_KNOWN_HOSTS="$SFTP_DIR/known_hosts"
export MTN_TEST_SFTP_HOST_FP=$(ssh-keygen -lf "$SFTP_DIR/ssh_host_ed25519_key.pub" | cut -d' ' -f2)
export MTN_TEST_SFTP_CONFIG="$SFTP_DIR/sshd_config"
