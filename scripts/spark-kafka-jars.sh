#!/usr/bin/env bash
# Resolve the Spark Kafka connector (org.apache.spark:spark-sql-kafka-0-10_2.13)
# at exactly the pyspark version installed in the venv, keep only the jars that
# pyspark does not bundle already (pyspark/jars), cache them and print the
# directory. Use it as spark.jars (comma-joined *.jar of that directory).
#
#   scripts/spark-kafka-jars.sh           print the jar directory (resolving once)
#   scripts/spark-kafka-jars.sh --list    print the jars, comma separated (for spark.jars)
#
# Env: RECFLOW_PYTHON (venv python), RECFLOW_CACHE_DIR.
set -euo pipefail
SERVICE_NAME=spark-kafka
# shellcheck source=lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

[[ -x "$VENV_PY" ]] || die "python not found at $VENV_PY (create the venv first, or set RECFLOW_PYTHON)"
read -r SPARK_VERSION PYSPARK_JARS < <(
  "$VENV_PY" -c 'import os, pyspark; print(pyspark.__version__, os.path.join(os.path.dirname(pyspark.__file__), "jars"))'
) || die "pyspark is not importable with $VENV_PY"
[[ -d "$PYSPARK_JARS" ]] || die "pyspark jars dir not found: $PYSPARK_JARS"
SCALA_BINARY=""
for f in "$PYSPARK_JARS"/spark-core_*.jar; do
  [[ -e "$f" ]] && SCALA_BINARY="$(basename "$f" | sed -n -E 's/^spark-core_([0-9.]+)-.*\.jar$/\1/p')"
done
SCALA_BINARY="${SCALA_BINARY:-2.13}"

OUT_DIR="$CACHE_DIR/spark-kafka-$SPARK_VERSION"

# artifact name of a jar file name: strip "-<version>[-<qualifier>].jar"
artifact_of() {
  sed -E 's/-[0-9][0-9A-Za-z.+]*(-[0-9A-Za-z][0-9A-Za-z.+]*)?\.jar$//' <<<"$1"
}

resolve() {
  command -v java >/dev/null 2>&1 || apt_install openjdk-17-jre-headless
  command -v mvn >/dev/null 2>&1 || apt_install maven
  log "resolving spark-sql-kafka-0-10_$SCALA_BINARY:$SPARK_VERSION into $OUT_DIR"
  local tmp="$OUT_DIR.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp/all" "$tmp/jars"
  if ! mvn -q -B -f "$SCRIPTS_DIR/spark-kafka/pom.xml" -Dspark.version="$SPARK_VERSION" \
    -Dscala.binary.version="$SCALA_BINARY" dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$tmp/all" >"$tmp/mvn.log" 2>&1; then
    show_log_tail "$tmp/mvn.log"
    rm -rf "$tmp"
    die "maven could not resolve spark-sql-kafka-0-10_$SCALA_BINARY:$SPARK_VERSION"
  fi
  declare -A bundled=()
  local f a
  for f in "$PYSPARK_JARS"/*.jar; do
    bundled["$(artifact_of "$(basename "$f")")"]=1
  done
  for f in "$tmp/all"/*.jar; do
    a="$(artifact_of "$(basename "$f")")"
    if [[ -z "${bundled[$a]:-}" ]]; then
      cp "$f" "$tmp/jars/"
    fi
  done
  compgen -G "$tmp/jars/spark-sql-kafka-0-10_*.jar" >/dev/null || die "connector jar missing after resolution"
  rm -rf "$OUT_DIR"
  mv "$tmp/jars" "$OUT_DIR"
  touch "$OUT_DIR/.complete"
  rm -rf "$tmp"
  log "jars: $(cd "$OUT_DIR" && printf -- '%s ' *.jar)"
}

[[ -f "$OUT_DIR/.complete" ]] || resolve

case "${1:-}" in
  "") echo "$OUT_DIR" ;;
  --list) printf '%s\n' "$OUT_DIR"/*.jar | paste -sd, - ;;
  *)
    echo "usage: $0 [--list]" >&2
    exit 2
    ;;
esac
