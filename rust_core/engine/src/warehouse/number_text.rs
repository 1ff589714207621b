//! Numbers as text and text as numbers, the way the Python loader spelt and read them.
//!
//! Invariants:
//! - both float spellings use the shortest digits that read back to the same double (ryu's);
//!   they differ only in where the exponent form starts and how the exponent is written:
//!   `write_json_float` is orjson's (`0.00001`, `1e-6`, `1e+16`), `write_python_float` is
//!   Python's `repr` (`1e-05`, `1e+16`, always a `.0` on whole numbers without an exponent);
//! - `parse_python_int` and `parse_python_float` accept what Python's `int(str)` and
//!   `float(str)` accept (surrounding whitespace, a sign, `_` between digits; for
//!   floats `1.`, `.5`, exponents; any Unicode decimal digit, `"١٢"` is 12), and give None for
//!   anything else, for an integer outside 64 bits, and for a float that is not finite.

/// The shortest round-trip digits of a finite `value` and where its decimal point goes:
/// `value = ±0.DIGITS × 10^point` (ryu's output taken apart).
fn shortest_digits(value: f64) -> (bool, Vec<u8>, i32) {
    let mut buffer = ryu::Buffer::new();
    let text = buffer.format_finite(value).as_bytes();
    let negative = text.first() == Some(&b'-');
    let text = if negative { &text[1..] } else { text };
    let (mantissa, exponent) = match text.iter().position(|&b| b == b'e' || b == b'E') {
        Some(e) => (
            &text[..e],
            std::str::from_utf8(&text[e + 1..])
                .ok()
                .and_then(|s| s.parse::<i32>().ok())
                .unwrap_or(0),
        ),
        None => (text, 0),
    };
    let dot = mantissa.iter().position(|&b| b == b'.').unwrap_or(mantissa.len());
    let mut digits: Vec<u8> = mantissa.iter().copied().filter(u8::is_ascii_digit).collect();
    let mut point = dot as i32 + exponent;
    // Leading zeros (0.001) move the point; trailing ones (100.0) are implied by it.
    let leading = digits.iter().take_while(|&&d| d == b'0').count();
    if leading == digits.len() {
        return (negative, vec![b'0'], 1);
    }
    digits.drain(..leading);
    point -= leading as i32;
    while digits.last() == Some(&b'0') {
        digits.pop();
    }
    (negative, digits, point)
}

/// Writes `±0.DIGITS × 10^point` in positional form (`whole` digits before the point).
fn write_positional(out: &mut Vec<u8>, digits: &[u8], point: i32) {
    if point <= 0 {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', (-point) as usize));
        out.extend_from_slice(digits);
    } else if point as usize >= digits.len() {
        out.extend_from_slice(digits);
        out.extend(std::iter::repeat_n(b'0', point as usize - digits.len()));
        out.extend_from_slice(b".0");
    } else {
        out.extend_from_slice(&digits[..point as usize]);
        out.push(b'.');
        out.extend_from_slice(&digits[point as usize..]);
    }
}

fn write_scientific(out: &mut Vec<u8>, digits: &[u8], point: i32, min_exponent_digits: usize) {
    out.push(digits[0]);
    if digits.len() > 1 {
        out.push(b'.');
        out.extend_from_slice(&digits[1..]);
    }
    let exponent = point - 1;
    out.push(b'e');
    out.push(if exponent < 0 { b'-' } else { b'+' });
    let magnitude = exponent.unsigned_abs().to_string();
    out.extend(std::iter::repeat_n(
        b'0',
        min_exponent_digits.saturating_sub(magnitude.len()),
    ));
    out.extend_from_slice(magnitude.as_bytes());
}

/// orjson's spelling of a finite double (JSON text, ids sent as numbers).
pub fn write_json_float(out: &mut Vec<u8>, value: f64) {
    let (negative, digits, point) = shortest_digits(value);
    if negative {
        out.push(b'-');
    }
    if (-4..=16).contains(&point) {
        write_positional(out, &digits, point);
    } else {
        write_scientific(out, &digits, point, 1);
    }
}

/// Python's `repr` of a finite double (`str(value)`: a number going into a text column).
pub fn write_python_float(out: &mut Vec<u8>, value: f64) {
    let (negative, digits, point) = shortest_digits(value);
    if negative {
        out.push(b'-');
    }
    if (-3..=16).contains(&point) {
        write_positional(out, &digits, point);
    } else {
        write_scientific(out, &digits, point, 2);
    }
}

/// Python's `str.isspace` (what `str.strip()` strips). `int()` and `float()` strip less: the
/// Unicode White_Space characters (`char::is_whitespace`), without U+001C..U+001F.
pub fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

// The zero of each run of ten Unicode decimal digits (category Nd, Unicode 14.0: Python 3.11's),
// which `int()` and `float()` read as 0-9.
const DECIMAL_ZEROS: [u32; 66] = [
    0x30, 0x660, 0x6f0, 0x7c0, 0x966, 0x9e6, 0xa66, 0xae6, 0xb66, 0xbe6, 0xc66, 0xce6, 0xd66, 0xde6, 0xe50, 0xed0,
    0xf20, 0x1040, 0x1090, 0x17e0, 0x1810, 0x1946, 0x19d0, 0x1a80, 0x1a90, 0x1b50, 0x1bb0, 0x1c40, 0x1c50, 0xa620,
    0xa8d0, 0xa900, 0xa9d0, 0xa9f0, 0xaa50, 0xabf0, 0xff10, 0x104a0, 0x10d30, 0x11066, 0x110f0, 0x11136, 0x111d0,
    0x112f0, 0x11450, 0x114d0, 0x11650, 0x116c0, 0x11730, 0x118e0, 0x11950, 0x11c50, 0x11d50, 0x11da0, 0x16a60,
    0x16ac0, 0x16b50, 0x1d7ce, 0x1d7d8, 0x1d7e2, 0x1d7ec, 0x1d7f6, 0x1e140, 0x1e2f0, 0x1e950, 0x1fbf0,
];

/// `text` stripped as `int()`/`float()` strip it, its decimal digits in ASCII (as Python
/// transforms them before parsing); None when another non-ASCII character is left.
fn numeric_ascii(text: &str) -> Option<std::borrow::Cow<'_, str>> {
    let text = text.trim_matches(char::is_whitespace);
    if text.is_ascii() {
        return Some(std::borrow::Cow::Borrowed(text));
    }
    text.chars()
        .map(|c| {
            if c.is_ascii() {
                return Some(c);
            }
            let code = c as u32;
            let run = DECIMAL_ZEROS.partition_point(|&zero| zero <= code).checked_sub(1)?;
            let digit = code - DECIMAL_ZEROS[run];
            (digit < 10).then(|| char::from(b'0' + digit as u8))
        })
        .collect::<Option<String>>()
        .map(std::borrow::Cow::Owned)
}

/// `text` without `_` between digits, when every `_` is between two ASCII digits; else None.
fn without_underscores(text: &str) -> Option<std::borrow::Cow<'_, str>> {
    if !text.contains('_') {
        return Some(std::borrow::Cow::Borrowed(text));
    }
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'_' {
            let before = i > 0 && bytes[i - 1].is_ascii_digit();
            let after = bytes.get(i + 1).is_some_and(u8::is_ascii_digit);
            if !(before && after) {
                return None;
            }
        }
    }
    Some(std::borrow::Cow::Owned(text.replace('_', "")))
}

/// Python's `int(text)` when it fits a signed 64-bit integer.
pub fn parse_python_int(text: &str) -> Option<i64> {
    let text = numeric_ascii(text)?;
    let text = text.as_ref();
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'_') {
        return None;
    }
    let clean = without_underscores(text)?;
    // Rust's i64 parser takes the same sign and digits; leading zeros are fine in both.
    clean.parse::<i64>().ok()
}

/// Python's `float(text)` when it is finite.
pub fn parse_python_float(text: &str) -> Option<f64> {
    let text = numeric_ascii(text)?;
    let text = text.as_ref();
    let unsigned = text.strip_prefix(['+', '-']).unwrap_or(text);
    // Digits, at most one '.', then an optional exponent: the grammar Rust's parser also takes,
    // without its words (inf, nan: not finite anyway).
    let mantissa_end = unsigned.find(['e', 'E']).unwrap_or(unsigned.len());
    let (mantissa, exponent) = unsigned.split_at(mantissa_end);
    let mantissa_digits = mantissa.bytes().filter(u8::is_ascii_digit).count();
    if mantissa_digits == 0
        || mantissa.bytes().filter(|&b| b == b'.').count() > 1
        || !mantissa.bytes().all(|b| b.is_ascii_digit() || b == b'.' || b == b'_')
    {
        return None;
    }
    if !exponent.is_empty() {
        let exponent_digits = exponent[1..].strip_prefix(['+', '-']).unwrap_or(&exponent[1..]);
        if exponent_digits.is_empty() || !exponent_digits.bytes().all(|b| b.is_ascii_digit() || b == b'_') {
            return None;
        }
    }
    let clean = without_underscores(text)?;
    clean.parse::<f64>().ok().filter(|f| f.is_finite())
}
