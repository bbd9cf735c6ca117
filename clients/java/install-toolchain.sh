#!/usr/bin/env bash
# Installs what the Java client needs from Maven Central (Java 17+ and mvn must be there already;
# without them it does nothing):
#   - protoc and protoc-gen-grpc-java (native executables) into .tools/bin, for
#     `python tools/genproto.py`. grpcio-tools' protoc has only the Python generators, so the Java
#     stubs come from protoc 4.36.2 (the gencode version equals the protobuf-java runtime in
#     pom.xml) with the grpc-java plugin 1.83.1, the newest whose linux-x86_64 build Central serves
#     (1.84.2 and 1.85.x answer 404); its stubs run on the newer grpc-java runtime (1.85.1).
#   - every Maven dependency and plugin of clients/java, so that `mvn -o` builds offline.
# Idempotent: fetches only what is missing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
bin="$repo/.tools/bin"
# Keep in step with tools/genproto_java.py (PROTOC_VERSION) and pom.xml (protobuf.version).
protoc_version=4.36.2
plugin_version=1.83.1

# Without Java or Maven there is nothing to do: say so and succeed, so that
# scripts/install-test-tools goes on (tests/clients/test_java.py then fails, saying why).
for tool in java mvn; do
  if ! command -v "$tool" >/dev/null; then
    echo "install-toolchain: $tool is not installed (the Java client needs Java 17+ and Maven): nothing done" >&2
    exit 0
  fi
done

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# fetch GROUP:ARTIFACT VERSION DEST: the linux-x86_64 executable of a Maven artifact.
fetch() {
  local artifact="$1" version="$2" dest="$3"
  if [ -x "$dest" ]; then
    echo "install-toolchain: $(basename "$dest") already in .tools/bin"
    return
  fi
  mkdir -p "$bin"
  mvn -q -B org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy \
    -Dartifact="$artifact:$version:exe:linux-x86_64" -DoutputDirectory="$tmp"
  install -m 0755 "$tmp/${artifact#*:}-$version-linux-x86_64.exe" "$dest"
  echo "install-toolchain: installed $(basename "$dest") into .tools/bin"
}
# Versioned names: another client may put a different protoc on PATH.
fetch com.google.protobuf:protoc "$protoc_version" "$bin/protoc-$protoc_version"
fetch io.grpc:protoc-gen-grpc-java "$plugin_version" "$bin/protoc-gen-grpc-java-$plugin_version"

# A first build, through `install` (what an app's build needs: the jar in the local repository),
# fetches every dependency and plugin that the offline builds (`mvn -o package`, `mvn -o install`)
# use, including surefire's JUnit provider, which only running the tests resolves
# (dependency:go-offline misses it). Test failures are not this script's business: the tests
# report them.
if ! (cd "$here" && mvn -q -B install -Dmaven.test.failure.ignore=true >"$tmp/build.log" 2>&1); then
  tail -40 "$tmp/build.log" >&2
  echo "install-toolchain: the first Maven build of clients/java failed (above)" >&2
  exit 1
fi
echo "install-toolchain: the Maven dependencies of clients/java are in the local repository"
