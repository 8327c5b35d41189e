//! A pickle machine for `torch.save` files: it implements only the opcodes a state dict pickles
//! to, never calls anything, and refuses every global outside a short list, so a hostile file can
//! do nothing but fail. Calls stay symbolic ([`Value::Call`]); `state_dict.rs` makes sense of them.

use std::collections::HashMap;

use crate::error::{Error, Result};

pub(super) fn truncated() -> Error {
    Error::weights("weights file is truncated")
}

/// Reads a byte slice front to back; every read past the end is a "truncated" error.
pub(super) struct Cursor<'a> {
    pub bytes: &'a [u8],
    pub pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes, pos: 0 }
    }
    pub fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len()).ok_or_else(truncated)?;
        let slice = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(slice)
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16_le(&mut self) -> Result<u16> {
        Ok(u16::from_le_bytes(self.take(2)?.try_into().unwrap()))
    }
    fn u32_le(&mut self) -> Result<u32> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }
    pub fn u64_le(&mut self) -> Result<u64> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn line(&mut self) -> Result<&'a str> {
        let rest = &self.bytes[self.pos..];
        let n = rest.iter().position(|&b| b == b'\n').ok_or_else(truncated)?;
        let line = std::str::from_utf8(&rest[..n]).map_err(|_| Error::weights("bad text in pickle"))?;
        self.pos += n + 1;
        Ok(line)
    }
}

/// The subset of Python values a state-dict pickle builds.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Value {
    None,
    Bool(bool),
    Int(i64),
    BigInt(u128),
    Float(f64),
    Str(String),
    Bytes(Vec<u8>),
    Tuple(Vec<Value>),
    List(Vec<Value>),
    Dict(Vec<(Value, Value)>),
    Global(String, String),
    /// `callable(*args)`, kept symbolic; items are what SETITEM(S) added (OrderedDict).
    Call { callable: Box<Value>, args: Vec<Value>, items: Vec<(Value, Value)> },
    PersistentId(Box<Value>),
    Mark,
}

impl Value {
    /// The entries of a dict or an `OrderedDict`.
    pub fn dict_items(&self) -> Option<&[(Value, Value)]> {
        match self {
            Value::Dict(items) => Some(items),
            Value::Call { callable, items, .. } if callable.is_global("collections", "OrderedDict") => Some(items),
            _ => None,
        }
    }

    pub fn is_global(&self, module: &str, name: &str) -> bool {
        matches!(self, Value::Global(m, n) if m == module && n == name)
    }

    /// A few words saying what this is, for error messages (a `Debug` dump could be megabytes).
    pub fn describe(&self) -> String {
        match self {
            Value::None => "None".into(),
            Value::Bool(_) => "a boolean".into(),
            Value::Int(_) | Value::BigInt(_) => "an integer".into(),
            Value::Float(_) => "a float".into(),
            Value::Str(_) => "a string".into(),
            Value::Bytes(_) => "bytes".into(),
            Value::Tuple(_) => "a tuple".into(),
            Value::List(_) => "a list".into(),
            Value::Dict(_) => "a dict".into(),
            Value::Global(m, n) => format!("{m}.{n}"),
            Value::Call { callable, .. } => match &**callable {
                Value::Global(m, n) if m == "collections" && n == "OrderedDict" => "an OrderedDict".into(),
                Value::Global(m, n) => format!("a {m}.{n}(...) object"),
                _ => "an object".into(),
            },
            Value::PersistentId(_) => "a storage".into(),
            Value::Mark => "a mark".into(),
        }
    }
}

/// Loads one pickle (up to its STOP opcode) from `cursor`, which is left just after it.
pub(super) fn load(cursor: &mut Cursor<'_>) -> Result<Value> {
    Unpickler { cursor, stack: Vec::new(), memo: HashMap::new() }.load()
}

struct Unpickler<'c, 'a> {
    cursor: &'c mut Cursor<'a>,
    stack: Vec<Value>,
    memo: HashMap<u32, Value>,
}

impl Unpickler<'_, '_> {
    fn pop(&mut self) -> Result<Value> {
        self.stack.pop().ok_or_else(|| Error::weights("malformed pickle: stack underflow"))
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>> {
        let mark = self
            .stack
            .iter()
            .rposition(|v| matches!(v, Value::Mark))
            .ok_or_else(|| Error::weights("malformed pickle: missing mark"))?;
        let items = self.stack.split_off(mark + 1);
        self.stack.pop();
        Ok(items)
    }

    fn top(&mut self) -> Result<&mut Value> {
        self.stack.last_mut().ok_or_else(|| Error::weights("malformed pickle: empty stack"))
    }

    fn set_items(&mut self, pairs: Vec<(Value, Value)>) -> Result<()> {
        match self.top()? {
            Value::Dict(items) | Value::Call { items, .. } => {
                items.extend(pairs);
                Ok(())
            }
            other => Err(Error::weights(format!("malformed pickle: SETITEM on {}", other.describe()))),
        }
    }

    fn memoize(&mut self, index: u32) -> Result<()> {
        let value = self.top()?.clone();
        self.memo.insert(index, value);
        Ok(())
    }

    fn recall(&mut self, index: u32) -> Result<()> {
        let value =
            self.memo.get(&index).cloned().ok_or_else(|| Error::weights("malformed pickle: bad memo"))?;
        self.stack.push(value);
        Ok(())
    }

    fn load(mut self) -> Result<Value> {
        loop {
            let op = self.cursor.u8()?;
            match op {
                0x80 => {
                    self.cursor.u8()?; // PROTO n
                }
                0x95 => {
                    self.cursor.u64_le()?; // FRAME length: frames are only a read-ahead hint
                }
                b'.' => return self.pop(), // STOP
                b'(' => self.stack.push(Value::Mark),
                b'N' => self.stack.push(Value::None),
                0x88 => self.stack.push(Value::Bool(true)),
                0x89 => self.stack.push(Value::Bool(false)),
                b'K' => {
                    let v = self.cursor.u8()?;
                    self.stack.push(Value::Int(v as i64))
                }
                b'M' => {
                    let v = self.cursor.u16_le()?;
                    self.stack.push(Value::Int(v as i64))
                }
                b'J' => {
                    let v = self.cursor.u32_le()? as i32;
                    self.stack.push(Value::Int(v as i64))
                }
                0x8a => {
                    // LONG1: little-endian two's complement of n bytes
                    let n = self.cursor.u8()? as usize;
                    let raw = self.cursor.take(n)?;
                    if n > 16 {
                        return Err(Error::weights("pickle integer too large"));
                    }
                    let mut buf = [0u8; 16];
                    buf[..n].copy_from_slice(raw);
                    if n > 0 && raw[n - 1] & 0x80 != 0 {
                        buf[n..].fill(0xff);
                    }
                    let v = u128::from_le_bytes(buf);
                    self.stack.push(match i64::try_from(v as i128) {
                        Ok(small) => Value::Int(small),
                        Err(_) => Value::BigInt(v),
                    })
                }
                b'I' => {
                    let line = self.cursor.line()?;
                    let v = match line {
                        "00" => Value::Bool(false),
                        "01" => Value::Bool(true),
                        _ => Value::Int(line.parse().map_err(|_| Error::weights("bad INT in pickle"))?),
                    };
                    self.stack.push(v)
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.cursor.take(8)?.try_into().unwrap());
                    self.stack.push(Value::Float(v))
                }
                b'X' | 0x8c | 0x8d => {
                    let n = match op {
                        b'X' => self.cursor.u32_le()? as usize,
                        0x8c => self.cursor.u8()? as usize,
                        _ => self.cursor.u64_le()? as usize,
                    };
                    let raw = self.cursor.take(n)?;
                    let s = std::str::from_utf8(raw).map_err(|_| Error::weights("bad UTF-8 in pickle"))?;
                    self.stack.push(Value::Str(s.to_string()))
                }
                b'T' | b'U' | b'B' | b'C' => {
                    let n = match op {
                        b'T' | b'B' => self.cursor.u32_le()? as usize,
                        _ => self.cursor.u8()? as usize,
                    };
                    let raw = self.cursor.take(n)?.to_vec();
                    // Python 2 pickles store text as byte strings.
                    self.stack.push(match (op, String::from_utf8(raw.clone())) {
                        (b'T' | b'U', Ok(s)) => Value::Str(s),
                        _ => Value::Bytes(raw),
                    })
                }
                b')' => self.stack.push(Value::Tuple(Vec::new())),
                b']' => self.stack.push(Value::List(Vec::new())),
                b'}' => self.stack.push(Value::Dict(Vec::new())),
                b't' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::Tuple(items))
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    self.stack.push(Value::List(items))
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    let pairs = pairs(items)?;
                    self.stack.push(Value::Dict(pairs))
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n {
                        return Err(Error::weights("malformed pickle: short tuple"));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.stack.push(Value::Tuple(items))
                }
                b'a' => {
                    let item = self.pop()?;
                    match self.top()? {
                        Value::List(items) => items.push(item),
                        _ => return Err(Error::weights("malformed pickle: APPEND to non-list")),
                    }
                }
                b'e' => {
                    let new = self.pop_mark()?;
                    match self.top()? {
                        Value::List(items) => items.extend(new),
                        _ => return Err(Error::weights("malformed pickle: APPENDS to non-list")),
                    }
                }
                b's' => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    self.set_items(vec![(key, value)])?
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    let pairs = pairs(items)?;
                    self.set_items(pairs)?
                }
                b'c' => {
                    let module = self.cursor.line()?.to_string();
                    let name = self.cursor.line()?.to_string();
                    self.stack.push(global(module, name)?)
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (Value::Str(m), Value::Str(n)) => self.stack.push(global(m, n)?),
                        _ => return Err(Error::weights("malformed pickle: STACK_GLOBAL")),
                    }
                }
                b'R' | 0x81 => {
                    let args = match self.pop()? {
                        Value::Tuple(args) => args,
                        _ => return Err(Error::weights("malformed pickle: REDUCE without tuple")),
                    };
                    let callable = Box::new(self.pop()?);
                    self.stack.push(Value::Call { callable, args, items: Vec::new() })
                }
                b'b' => {
                    // BUILD sets object state; a state dict's only state is `_metadata`.
                    self.pop()?;
                }
                b'Q' => {
                    let pid = self.pop()?;
                    self.stack.push(Value::PersistentId(Box::new(pid)))
                }
                b'q' => {
                    let i = self.cursor.u8()? as u32;
                    self.memoize(i)?
                }
                b'r' => {
                    let i = self.cursor.u32_le()?;
                    self.memoize(i)?
                }
                0x94 => {
                    let i = self.memo.len() as u32;
                    self.memoize(i)?
                }
                b'h' => {
                    let i = self.cursor.u8()? as u32;
                    self.recall(i)?
                }
                b'j' => {
                    let i = self.cursor.u32_le()?;
                    self.recall(i)?
                }
                b'0' => {
                    self.pop()?;
                }
                other => {
                    return Err(Error::weights(format!("unsupported pickle opcode 0x{other:02x}")));
                }
            }
        }
    }
}

fn pairs(items: Vec<Value>) -> Result<Vec<(Value, Value)>> {
    if items.len() % 2 != 0 {
        return Err(Error::weights("malformed pickle: odd number of dict items"));
    }
    let mut it = items.into_iter();
    let mut out = Vec::new();
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        out.push((k, v));
    }
    Ok(out)
}

/// Only the globals a state dict needs: the tensor rebuild functions, storage classes and dtypes
/// (which name a storage's element type), and `OrderedDict`. Anything else is refused.
fn global(module: String, name: String) -> Result<Value> {
    let allowed = match module.as_str() {
        "collections" => name == "OrderedDict",
        "torch._utils" => matches!(name.as_str(), "_rebuild_tensor_v2" | "_rebuild_tensor" | "_rebuild_parameter"),
        "torch" => super::state_dict::StorageType::from_global_name(&name).is_some(),
        _ => false,
    };
    if !allowed {
        return Err(Error::weights(format!(
            "refusing to load {module}.{name}: a weights file may only hold tensors by name (a state dict), \
             and this one names other Python code (save `model.state_dict()`, not the model)"
        )));
    }
    Ok(Value::Global(module, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_all(bytes: &[u8]) -> Result<Value> {
        load(&mut Cursor::new(bytes))
    }

    #[test]
    fn builds_dicts_tuples_and_memoised_values() {
        // {"a": (1, -2, 300), "b": "a"-memo} with protocol 2 opcodes
        let pickle = b"\x80\x02}q\x00(X\x01\x00\x00\x00aq\x01K\x01J\xfe\xff\xff\xffM,\x01\x87X\x01\x00\x00\x00bh\x01u.";
        let value = load_all(pickle).unwrap();
        let items = value.dict_items().unwrap();
        assert_eq!(items[0].1, Value::Tuple(vec![Value::Int(1), Value::Int(-2), Value::Int(300)]));
        assert_eq!(items[1].1, Value::Str("a".into()));
    }

    #[test]
    fn refuses_globals_outside_the_state_dict_list() {
        for pickle in [&b"\x80\x02cos\nsystem\nX\x02\x00\x00\x00hi\x85R."[..], b"\x80\x04\x8c\x02os\x8c\x06system\x93."] {
            let err = load_all(pickle).unwrap_err().to_string();
            assert!(err.contains("refusing to load os.system"), "{err}");
        }
        let err = load_all(b"\x80\x02ctorch\nload\n.").unwrap_err().to_string();
        assert!(err.contains("torch.load"), "{err}");
    }

    #[test]
    fn malformed_pickles_are_errors_not_panics() {
        for pickle in [&b""[..], b"\x80", b"\x80\x02.", b"\x80\x02(u.", b"\x80\x02h\x05.", b"\x80\x02K\x01R.", b"\xff"] {
            assert!(load_all(pickle).is_err(), "{pickle:?}");
        }
    }
}
