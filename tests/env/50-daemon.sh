# The daemon's tests check /metrics with Prometheus' promtool and render the status page in
# headless Chromium (both Debian packages).
command -v promtool >/dev/null 2>&1 || apt_install prometheus
command -v chromium >/dev/null 2>&1 || apt_install chromium
export MTN_TEST_PROMTOOL="$(command -v promtool)"
export MTN_TEST_CHROMIUM="$(command -v chromium)"
