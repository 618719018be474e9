package recflow.spark;

import java.nio.charset.StandardCharsets;
import java.util.Arrays;

import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.api.java.UDF2;

/**
 * Parses an event record in the contract's canonical shape, straight from its UTF-8 bytes.
 *
 * <p>The shape is the one {@code backend.pipeline.validation.canonical_pattern} describes: a JSON
 * object with the contract's fields in contract order (JSON whitespace allowed between tokens),
 * required fields present and of their JSON type, optional ones absent, {@code null} or of their
 * type, and no other field; constrained values (version, enumerations, ids) as the contract
 * restricts them. Strings must also be plain ASCII without escapes. A record in that shape gives
 * a {@link Row} of the typed values (bigint, double, and strings as their UTF-8 bytes, which
 * Spark turns into strings without decoding them), the values {@code from_json} gives for it;
 * any other record gives {@code null} and is left to the exact (VARIANT) path.
 *
 * <p>The contract comes as the second argument (ASCII bytes, a literal: it is parsed again only
 * when it changes), one entry per field separated by {@code ;}:
 * {@code name|kind|required|rule} with kind {@code s}, {@code i} or {@code n} (string, integer,
 * number), required {@code 1} or {@code 0}, and rule empty, {@code =v} (the only allowed
 * integer), {@code e:a/b/c} (one of these strings), {@code id:N:C} (1 to N characters of the
 * ASCII character class {@code [C]}, e.g. {@code A-Za-z0-9_-}), {@code id:N:C:F} (the same, and
 * the first character also of the class {@code [F]}) or {@code len:N} (1 to N characters).
 */
public final class CanonicalEvent implements UDF2<byte[], byte[], Row> {
  private static final long serialVersionUID = 1L;

  private static final int MAX_INT_DIGITS = 18;
  private static final int MAX_NUM_INT_DIGITS = 15;
  private static final int MAX_NUM_FRACTION_DIGITS = 15;

  private transient byte[] specBytes;
  private transient Field[] fields;

  private static final class Field {
    final byte[] name;
    final char kind;
    final boolean required;
    final Long constant;
    final byte[][] choices;
    final int idMax;
    final boolean[] idChars;
    final boolean[] idFirst;
    final int lenMax;

    Field(String entry) {
      String[] parts = entry.split("\\|", -1);
      if (parts.length != 4 || parts[1].length() != 1) {
        throw new IllegalArgumentException("bad field entry: " + entry);
      }
      name = parts[0].getBytes(StandardCharsets.US_ASCII);
      kind = parts[1].charAt(0);
      required = parts[2].equals("1");
      String rule = parts[3];
      constant = rule.startsWith("=") ? Long.valueOf(rule.substring(1)) : null;
      if (rule.startsWith("e:")) {
        String[] names = rule.substring(2).split("/");
        choices = new byte[names.length][];
        for (int i = 0; i < names.length; i++) {
          choices[i] = names[i].getBytes(StandardCharsets.US_ASCII);
        }
      } else {
        choices = null;
      }
      if (rule.startsWith("id:")) {
        String[] id = rule.split(":", -1);
        if (id.length != 3 && id.length != 4) {
          throw new IllegalArgumentException("bad id rule: " + rule);
        }
        idMax = Integer.parseInt(id[1]);
        idChars = characterClass(id[2]);
        idFirst = id.length == 4 ? characterClass(id[3]) : idChars;
      } else {
        idMax = 0;
        idChars = null;
        idFirst = null;
      }
      lenMax = rule.startsWith("len:") ? Integer.parseInt(rule.substring(4)) : 0;
    }

    /** The ASCII characters of a regex class body of single characters and ranges. */
    private static boolean[] characterClass(String body) {
      boolean[] allowed = new boolean[128];
      for (int i = 0; i < body.length(); i++) {
        char from = body.charAt(i);
        char to = from;
        if (i + 2 < body.length() && body.charAt(i + 1) == '-') {
          to = body.charAt(i + 2);
          i += 2;
        }
        if (from > to || to > 127 || from == '\\' || from == '[' || from == '^') {
          throw new IllegalArgumentException("unsupported id character class: " + body);
        }
        for (char c = from; c <= to; c++) {
          allowed[c] = true;
        }
      }
      return allowed;
    }
  }

  private Field[] fields(byte[] spec) {
    if (spec != specBytes && !Arrays.equals(spec, specBytes)) {
      String[] entries = new String(spec, StandardCharsets.US_ASCII).split(";");
      Field[] parsed = new Field[entries.length];
      for (int i = 0; i < entries.length; i++) {
        parsed[i] = new Field(entries[i]);
      }
      fields = parsed;
      specBytes = spec;
    }
    return fields;
  }

  @Override
  public Row call(byte[] record, byte[] spec) {
    if (record == null) {
      return null;
    }
    Field[] specs = fields(spec);
    Object[] values = new Object[specs.length];
    return parse(record, specs, values) ? RowFactory.create(values) : null;
  }

  private static boolean isWs(byte b) {
    return b == ' ' || b == '\t' || b == '\n' || b == '\r';
  }

  private static int skipWs(byte[] b, int p) {
    while (p < b.length && isWs(b[p])) {
      p++;
    }
    return p;
  }

  /** The index just past the closing quote of a plain string opening at {@code p}, or -1. */
  private static int stringEnd(byte[] b, int p) {
    if (p >= b.length || b[p] != '"') {
      return -1;
    }
    for (int i = p + 1; i < b.length; i++) {
      byte c = b[i];
      if (c == '"') {
        return i + 1;
      }
      // Escapes, control characters and non-ASCII bytes: left to the exact path.
      if (c == '\\' || c < 0x20) {
        return -1;
      }
    }
    return -1;
  }

  private static boolean regionEquals(byte[] b, int from, int to, byte[] expected) {
    return to - from == expected.length && Arrays.equals(b, from, to, expected, 0, expected.length);
  }

  /** The end of the digits run starting at {@code p}. */
  private static int digitsEnd(byte[] b, int p) {
    while (p < b.length && b[p] >= '0' && b[p] <= '9') {
      p++;
    }
    return p;
  }

  static boolean parse(byte[] b, Field[] specs, Object[] values) {
    int p = skipWs(b, 0);
    if (p >= b.length || b[p] != '{') {
      return false;
    }
    p = skipWs(b, p + 1);
    int next = 0; // the first field that may still come
    boolean member = true; // a member must come next (at the start, or after a comma)
    while (true) {
      if (p >= b.length) {
        return false;
      }
      if (b[p] == '}') {
        if (member) {
          return false; // {} (it lacks the required fields)
        }
        break;
      }
      if (!member) {
        return false;
      }
      // A member: "name" : value
      int keyEnd = stringEnd(b, p);
      if (keyEnd < 0) {
        return false;
      }
      int k = next;
      while (k < specs.length && !regionEquals(b, p + 1, keyEnd - 1, specs[k].name)) {
        if (specs[k].required) {
          return false; // out of order, or a required field is missing
        }
        k++;
      }
      if (k == specs.length) {
        return false; // unknown, repeated or out-of-order field
      }
      Field f = specs[k];
      p = skipWs(b, keyEnd);
      if (p >= b.length || b[p] != ':') {
        return false;
      }
      p = skipWs(b, p + 1);
      p = value(b, p, f, values, k);
      if (p < 0) {
        return false;
      }
      next = k + 1;
      p = skipWs(b, p);
      if (p < b.length && b[p] == ',') {
        p = skipWs(b, p + 1);
        if (p < b.length && b[p] == '}') {
          return false; // trailing comma
        }
        continue;
      }
      member = false; // only "}" may follow
    }
    if (skipWs(b, p + 1) != b.length) {
      return false;
    }
    for (int k = next; k < specs.length; k++) {
      if (specs[k].required) {
        return false;
      }
    }
    return true;
  }

  /** Reads the value of field {@code f} at {@code p} into {@code values[k]}; the end, or -1. */
  private static int value(byte[] b, int p, Field f, Object[] values, int k) {
    if (!f.required && b.length - p >= 4 && b[p] == 'n' && b[p + 1] == 'u' && b[p + 2] == 'l'
        && b[p + 3] == 'l') {
      values[k] = null;
      return p + 4;
    }
    switch (f.kind) {
      case 's': {
        int end = stringEnd(b, p);
        if (end < 0) {
          return -1;
        }
        int from = p + 1;
        int to = end - 1;
        if (f.choices != null) {
          boolean found = false;
          for (byte[] choice : f.choices) {
            if (regionEquals(b, from, to, choice)) {
              found = true;
              break;
            }
          }
          if (!found) {
            return -1;
          }
        }
        if (f.idMax > 0) {
          if (to - from < 1 || to - from > f.idMax) {
            return -1;
          }
          if (!f.idFirst[b[from]]) {
            return -1;
          }
          for (int i = from; i < to; i++) {
            if (!f.idChars[b[i]]) {
              return -1;
            }
          }
        }
        // Plain ASCII (stringEnd): a byte is a character.
        if (f.lenMax > 0 && (to - from < 1 || to - from > f.lenMax)) {
          return -1;
        }
        values[k] = Arrays.copyOfRange(b, from, to);
        return end;
      }
      case 'i': {
        int i = p;
        boolean negative = i < b.length && b[i] == '-';
        if (negative) {
          i++;
        }
        int end = digitsEnd(b, i);
        int n = end - i;
        if (n < 1 || n > MAX_INT_DIGITS || (n > 1 && b[i] == '0')) {
          return -1;
        }
        if (end < b.length && (b[end] == '.' || b[end] == 'e' || b[end] == 'E')) {
          return -1;
        }
        long v = 0;
        for (int j = i; j < end; j++) {
          v = v * 10 + (b[j] - '0');
        }
        v = negative ? -v : v;
        if (f.constant != null && v != f.constant) {
          return -1;
        }
        values[k] = v;
        return end;
      }
      case 'n': {
        int i = p;
        if (i < b.length && b[i] == '-') {
          i++;
        }
        int intEnd = digitsEnd(b, i);
        int n = intEnd - i;
        if (n < 1 || n > MAX_NUM_INT_DIGITS || (n > 1 && b[i] == '0')) {
          return -1;
        }
        int end = intEnd;
        if (end < b.length && b[end] == '.') {
          int fracEnd = digitsEnd(b, end + 1);
          int m = fracEnd - end - 1;
          if (m < 1 || m > MAX_NUM_FRACTION_DIGITS) {
            return -1;
          }
          end = fracEnd;
        }
        if (end < b.length && (b[end] == 'e' || b[end] == 'E')) {
          return -1;
        }
        values[k] = Double.parseDouble(new String(b, p, end - p, StandardCharsets.ISO_8859_1));
        return end;
      }
      default:
        throw new IllegalStateException("unknown kind " + f.kind);
    }
  }
}
