# Checks capability: openssl (test certificates), curl (benchmark), and a venv with aiosmtpd, the
# SMTP sink the email tests start on their own free ports.
apt_install openssl curl python3-venv

CHECKS_VENV="$MTN_TEST_ENV/checks-venv"
if ! "$CHECKS_VENV/bin/python" -c 'import aiosmtpd' 2>/dev/null; then
  echo "tests/env/40-checks.sh: installing aiosmtpd into $CHECKS_VENV" >&2
  python3 -m venv "$CHECKS_VENV" >&2
  "$CHECKS_VENV/bin/pip" install -q aiosmtpd==1.4.6 >&2
fi
export MTN_TEST_CHECKS_PYTHON="$CHECKS_VENV/bin/python"
