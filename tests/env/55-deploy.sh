# The deploy tests: systemd-analyze (Debian's systemd package) verifies the units, util-linux's
# unshare/setpriv/findmnt build the read-only-root namespace, and kubernetes-validate (PyPI; it
# ships the Kubernetes JSON schemas, so no network at test time) checks the manifest.
command -v systemd-analyze >/dev/null 2>&1 || apt_install systemd
command -v setpriv >/dev/null 2>&1 || apt_install util-linux
apt_install python3-venv
DEPLOY_VENV="$MTN_TEST_ENV/deploy-venv"
if ! "$DEPLOY_VENV/bin/kubernetes-validate" --version >/dev/null 2>&1; then
  echo "tests/env/55-deploy.sh: installing kubernetes-validate into $DEPLOY_VENV" >&2
  python3 -m venv "$DEPLOY_VENV" >&2
  "$DEPLOY_VENV/bin/pip" install -q kubernetes-validate==1.37.0 >&2
fi
export MTN_TEST_KUBERNETES_VALIDATE="$DEPLOY_VENV/bin/kubernetes-validate"
