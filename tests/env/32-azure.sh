# Azure Blob Storage for the az:// storage tests: Azurite (Microsoft's emulator, an npm package)
# on a free loopback port with its own workspace, plus a container. Tests read blobs back through
# Azurite's REST API with tests/env/azure_rest.py (SharedKey, standard library only).
# Exports MTN_TEST_AZURE_ENDPOINT (path-style account URL), MTN_TEST_AZURE_ACCOUNT,
# MTN_TEST_AZURE_KEY (Azurite's published development key), MTN_TEST_AZURE_CONTAINER,
# MTN_TEST_AZURE_REST (the client) and MTN_TEST_AZURITE (the binary, for disposable instances).

azurite_version=3.35.0
if [ ! -x "$MTN_TEST_ENV/azurite/node_modules/.bin/azurite-blob" ] ||
  ! grep -q "\"version\": \"$azurite_version\"" "$MTN_TEST_ENV/azurite/node_modules/azurite/package.json" 2>/dev/null; then
  echo "tests/env/32-azure.sh: installing azurite@$azurite_version (npm)" >&2
  mkdir -p "$MTN_TEST_ENV/azurite"
  (cd "$MTN_TEST_ENV/azurite" && npm install --no-audit --no-fund --silent "azurite@$azurite_version" >&2)
fi
export MTN_TEST_AZURITE="$MTN_TEST_ENV/azurite/node_modules/.bin/azurite-blob"
export MTN_TEST_AZURE_ACCOUNT=devstoreaccount1
export MTN_TEST_AZURE_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='
export MTN_TEST_AZURE_CONTAINER=mtn-test
export MTN_TEST_AZURE_REST="$MTN_REPO/tests/env/azure_rest.py"

# start_azurite DIR PORT: an Azurite blob service on 127.0.0.1:PORT with workspace DIR; prints its PID.
start_azurite() {
  mkdir -p "$1"
  "$MTN_TEST_AZURITE" --blobHost 127.0.0.1 --blobPort "$2" --location "$1" --silent \
    --skipApiVersionCheck --disableProductStyleUrl --disableTelemetry >"$1.log" 2>&1 &
  echo $!
}

AZ_PORT=$(free_port)
AZ_PID=$(start_azurite "$MTN_TEST_TMP/azurite" "$AZ_PORT")
export MTN_TEST_PIDS="$MTN_TEST_PIDS $AZ_PID"
wait_port 127.0.0.1 "$AZ_PORT" 60
export MTN_TEST_AZURE_ENDPOINT="http://127.0.0.1:$AZ_PORT/$MTN_TEST_AZURE_ACCOUNT"
python3 "$MTN_TEST_AZURE_REST" "$MTN_TEST_AZURE_ENDPOINT" "$MTN_TEST_AZURE_ACCOUNT" "$MTN_TEST_AZURE_KEY" \
  mkcontainer "$MTN_TEST_AZURE_CONTAINER"
