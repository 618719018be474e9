package recflow.spark;

import org.apache.spark.sql.api.java.UDF2;

/**
 * Whether a record is one JSON text exactly as Python's {@code json.loads} takes it: valid UTF-8,
 * one value (RFC 8259) with nothing but JSON whitespace around it, and containers nested at most
 * the given depth deep.
 *
 * <p>Spark's JSON parsers stop after the first value, so {@code {"a":1} trailing} parses; this
 * check is what tells such a record from a JSON text. Duplicate keys and {@code NaN} are left to
 * the parser, which rejects them.
 */
public final class JsonText implements UDF2<byte[], Integer, Boolean> {
  private static final long serialVersionUID = 1L;

  @Override
  public Boolean call(byte[] record, Integer maxDepth) {
    if (record == null) {
      return null;
    }
    return new Scanner(record, maxDepth == null ? Integer.MAX_VALUE : maxDepth).document();
  }

  private static final class Scanner {
    private final byte[] b;
    private final int maxDepth;
    private int p;
    private int depth;

    Scanner(byte[] b, int maxDepth) {
      this.b = b;
      this.maxDepth = maxDepth;
    }

    boolean document() {
      ws();
      if (!value()) {
        return false;
      }
      ws();
      return p == b.length;
    }

    private void ws() {
      while (p < b.length && (b[p] == ' ' || b[p] == '\t' || b[p] == '\n' || b[p] == '\r')) {
        p++;
      }
    }

    private boolean value() {
      if (p >= b.length) {
        return false;
      }
      switch (b[p]) {
        case '{':
          return container('}');
        case '[':
          return container(']');
        case '"':
          return string();
        case 't':
          return literal("true");
        case 'f':
          return literal("false");
        case 'n':
          return literal("null");
        default:
          return number();
      }
    }

    private boolean container(char close) {
      if (++depth > maxDepth) {
        return false;
      }
      p++;
      ws();
      if (p < b.length && b[p] == close) {
        p++;
        depth--;
        return true;
      }
      while (true) {
        if (close == '}') {
          if (p >= b.length || b[p] != '"' || !string()) {
            return false;
          }
          ws();
          if (p >= b.length || b[p] != ':') {
            return false;
          }
          p++;
          ws();
        }
        if (!value()) {
          return false;
        }
        ws();
        if (p >= b.length) {
          return false;
        }
        if (b[p] == ',') {
          p++;
          ws();
          continue;
        }
        if (b[p] == close) {
          p++;
          depth--;
          return true;
        }
        return false;
      }
    }

    private boolean literal(String word) {
      if (b.length - p < word.length()) {
        return false;
      }
      for (int i = 0; i < word.length(); i++) {
        if (b[p + i] != word.charAt(i)) {
          return false;
        }
      }
      p += word.length();
      return true;
    }

    private boolean digits() {
      int start = p;
      while (p < b.length && b[p] >= '0' && b[p] <= '9') {
        p++;
      }
      return p > start;
    }

    private boolean number() {
      if (b[p] == '-') {
        p++;
      }
      if (p >= b.length) {
        return false;
      }
      if (b[p] == '0') {
        p++;
      } else if (b[p] >= '1' && b[p] <= '9') {
        digits();
      } else {
        return false;
      }
      if (p < b.length && b[p] == '.') {
        p++;
        if (!digits()) {
          return false;
        }
      }
      if (p < b.length && (b[p] == 'e' || b[p] == 'E')) {
        p++;
        if (p < b.length && (b[p] == '+' || b[p] == '-')) {
          p++;
        }
        return digits();
      }
      return true;
    }

    private static boolean isHex(byte c) {
      return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    }

    private boolean continuation(int i, int low, int high) {
      if (p + i >= b.length) {
        return false;
      }
      int c = b[p + i] & 0xFF;
      return c >= low && c <= high;
    }

    /** A string at {@code p} (its opening quote), with strict UTF-8 and JSON escapes. */
    private boolean string() {
      p++;
      while (p < b.length) {
        int c = b[p] & 0xFF;
        if (c == '"') {
          p++;
          return true;
        }
        if (c == '\\') {
          if (p + 1 >= b.length) {
            return false;
          }
          byte e = b[p + 1];
          if (e == 'u') {
            if (p + 5 >= b.length) {
              return false;
            }
            for (int i = 2; i <= 5; i++) {
              if (!isHex(b[p + i])) {
                return false;
              }
            }
            p += 6;
          } else if (e == '"' || e == '\\' || e == '/' || e == 'b' || e == 'f' || e == 'n'
              || e == 'r' || e == 't') {
            p += 2;
          } else {
            return false;
          }
        } else if (c < 0x20) {
          return false;
        } else if (c < 0x80) {
          p++;
        } else if (c >= 0xC2 && c <= 0xDF) {
          if (!continuation(1, 0x80, 0xBF)) {
            return false;
          }
          p += 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
          int low = c == 0xE0 ? 0xA0 : 0x80;
          int high = c == 0xED ? 0x9F : 0xBF; // no UTF-16 surrogates
          if (!continuation(1, low, high) || !continuation(2, 0x80, 0xBF)) {
            return false;
          }
          p += 3;
        } else if (c >= 0xF0 && c <= 0xF4) {
          int low = c == 0xF0 ? 0x90 : 0x80;
          int high = c == 0xF4 ? 0x8F : 0xBF; // at most U+10FFFF
          if (!continuation(1, low, high) || !continuation(2, 0x80, 0xBF)
              || !continuation(3, 0x80, 0xBF)) {
            return false;
          }
          p += 4;
        } else {
          return false;
        }
      }
      return false;
    }
  }
}
