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

/// Deepest nesting of containers a pickle may build. A state dict nests about six deep (dict,
/// tensor call, argument tuple, storage id); a hostile pickle of a million nested lists would
/// overflow the stack when dropped.
pub(super) const MAX_DEPTH: u32 = 100;
/// Most bytes of values one pickle may build, memo copies included (64 MiB). State-dict pickles
/// hold names and small tuples, a few MB at most; memo recalls copy values, so a few hundred
/// bytes of doubling recalls could otherwise ask for gigabytes.
pub(super) const MAX_BUILT_BYTES: u64 = 64 << 20;

/// Loads one pickle (up to its STOP opcode) from `cursor`, which is left just after it.
pub(super) fn load(cursor: &mut Cursor<'_>) -> Result<Value> {
    Unpickler { cursor, stack: Vec::new(), memo: HashMap::new(), built: 0 }.load()
}

/// A stack entry: the value, how deeply it nests, and what it cost to build (its bytes).
struct Slot {
    value: Value,
    depth: u32,
    cost: u64,
}

/// What one value costs beyond its payload: the enum itself.
const NODE: u64 = std::mem::size_of::<Value>() as u64;

struct Unpickler<'c, 'a> {
    cursor: &'c mut Cursor<'a>,
    stack: Vec<Slot>,
    memo: HashMap<u32, Slot>,
    /// Bytes of values built so far, against [`MAX_BUILT_BYTES`].
    built: u64,
}

impl Unpickler<'_, '_> {
    fn spend(&mut self, cost: u64) -> Result<()> {
        self.built = self.built.saturating_add(cost);
        if self.built > MAX_BUILT_BYTES {
            return Err(Error::weights(format!(
                "malformed pickle: it builds more than {} MB of values (a memo bomb?)",
                MAX_BUILT_BYTES >> 20
            )));
        }
        Ok(())
    }

    /// Pushes a new leaf value whose payload is `payload` bytes.
    fn leaf(&mut self, value: Value, payload: usize) -> Result<()> {
        let cost = NODE + payload as u64;
        self.spend(cost)?;
        self.stack.push(Slot { value, depth: 0, cost });
        Ok(())
    }

    /// Pushes a container made of `items` (already paid for).
    fn container(&mut self, make: impl FnOnce(Vec<Value>) -> Value, items: Vec<Slot>) -> Result<()> {
        self.spend(NODE)?;
        let depth = items.iter().map(|s| s.depth + 1).max().unwrap_or(0);
        if depth > MAX_DEPTH {
            return Err(Error::weights(format!("malformed pickle: nested more than {MAX_DEPTH} deep")));
        }
        let cost = NODE + items.iter().map(|s| s.cost).sum::<u64>();
        self.stack.push(Slot { value: make(items.into_iter().map(|s| s.value).collect()), depth, cost });
        Ok(())
    }

    fn pop(&mut self) -> Result<Slot> {
        self.stack.pop().ok_or_else(|| Error::weights("malformed pickle: stack underflow"))
    }

    fn pop_mark(&mut self) -> Result<Vec<Slot>> {
        let mark = self
            .stack
            .iter()
            .rposition(|s| matches!(s.value, Value::Mark))
            .ok_or_else(|| Error::weights("malformed pickle: missing mark"))?;
        let items = self.stack.split_off(mark + 1);
        self.stack.pop();
        Ok(items)
    }

    /// Adds `items` to the container on top of the stack with `add`, updating its depth and cost.
    fn extend_top(&mut self, items: Vec<Slot>, add: impl FnOnce(&mut Value, Vec<Value>) -> Result<()>) -> Result<()> {
        let depth = items.iter().map(|s| s.depth + 1).max().unwrap_or(0);
        let cost: u64 = items.iter().map(|s| s.cost).sum();
        let top = self.stack.last_mut().ok_or_else(|| Error::weights("malformed pickle: empty stack"))?;
        if depth > MAX_DEPTH {
            return Err(Error::weights(format!("malformed pickle: nested more than {MAX_DEPTH} deep")));
        }
        top.depth = top.depth.max(depth);
        top.cost += cost;
        add(&mut top.value, items.into_iter().map(|s| s.value).collect())
    }

    fn set_items(&mut self, items: Vec<Slot>) -> Result<()> {
        if items.len() % 2 != 0 {
            return Err(Error::weights("malformed pickle: odd number of dict items"));
        }
        self.extend_top(items, |top, values| match top {
            Value::Dict(items) | Value::Call { items, .. } => {
                items.extend(pairs(values)?);
                Ok(())
            }
            other => Err(Error::weights(format!("malformed pickle: SETITEM on {}", other.describe()))),
        })
    }

    fn append(&mut self, items: Vec<Slot>) -> Result<()> {
        self.extend_top(items, |top, values| match top {
            Value::List(items) => {
                items.extend(values);
                Ok(())
            }
            _ => Err(Error::weights("malformed pickle: APPEND to non-list")),
        })
    }

    /// Memo entries are copies (values are not shared), so each copy is paid for.
    fn memoize(&mut self, index: u32) -> Result<()> {
        let cost = self.stack.last().ok_or_else(|| Error::weights("malformed pickle: empty stack"))?.cost;
        self.spend(cost)?; // before the copy is made
        let top = &self.stack[self.stack.len() - 1];
        let copy = Slot { value: top.value.clone(), depth: top.depth, cost };
        self.memo.insert(index, copy);
        Ok(())
    }

    fn recall(&mut self, index: u32) -> Result<()> {
        let cost = self.memo.get(&index).ok_or_else(|| Error::weights("malformed pickle: bad memo"))?.cost;
        self.spend(cost)?; // before the copy is made
        let slot = &self.memo[&index];
        let copy = Slot { value: slot.value.clone(), depth: slot.depth, cost };
        self.stack.push(copy);
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
                b'.' => return Ok(self.pop()?.value), // STOP
                b'(' => self.leaf(Value::Mark, 0)?,
                b'N' => self.leaf(Value::None, 0)?,
                0x88 => self.leaf(Value::Bool(true), 0)?,
                0x89 => self.leaf(Value::Bool(false), 0)?,
                b'K' => {
                    let v = self.cursor.u8()?;
                    self.leaf(Value::Int(v as i64), 0)?
                }
                b'M' => {
                    let v = self.cursor.u16_le()?;
                    self.leaf(Value::Int(v as i64), 0)?
                }
                b'J' => {
                    let v = self.cursor.u32_le()? as i32;
                    self.leaf(Value::Int(v as i64), 0)?
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
                    let value = match i64::try_from(v as i128) {
                        Ok(small) => Value::Int(small),
                        Err(_) => Value::BigInt(v),
                    };
                    self.leaf(value, 0)?
                }
                b'I' => {
                    let line = self.cursor.line()?;
                    let v = match line {
                        "00" => Value::Bool(false),
                        "01" => Value::Bool(true),
                        _ => Value::Int(line.parse().map_err(|_| Error::weights("bad INT in pickle"))?),
                    };
                    self.leaf(v, 0)?
                }
                b'G' => {
                    let v = f64::from_be_bytes(self.cursor.take(8)?.try_into().unwrap());
                    self.leaf(Value::Float(v), 0)?
                }
                b'X' | 0x8c | 0x8d => {
                    let n = match op {
                        b'X' => self.cursor.u32_le()? as u64,
                        0x8c => self.cursor.u8()? as u64,
                        _ => self.cursor.u64_le()?,
                    };
                    // Checked in u64: `as usize` would wrap on 32-bit wasm.
                    let n = usize::try_from(n).map_err(|_| truncated())?;
                    let raw = self.cursor.take(n)?;
                    let s = std::str::from_utf8(raw).map_err(|_| Error::weights("bad UTF-8 in pickle"))?;
                    self.leaf(Value::Str(s.to_string()), n)?
                }
                b'T' | b'U' | b'B' | b'C' => {
                    let n = match op {
                        b'T' | b'B' => self.cursor.u32_le()? as usize,
                        _ => self.cursor.u8()? as usize,
                    };
                    let raw = self.cursor.take(n)?;
                    // Python 2 pickles store text as byte strings.
                    let value = match (op, std::str::from_utf8(raw)) {
                        (b'T' | b'U', Ok(s)) => Value::Str(s.to_string()),
                        _ => Value::Bytes(raw.to_vec()),
                    };
                    self.leaf(value, n)?
                }
                b')' => self.leaf(Value::Tuple(Vec::new()), 0)?,
                b']' => self.leaf(Value::List(Vec::new()), 0)?,
                b'}' => self.leaf(Value::Dict(Vec::new()), 0)?,
                b't' => {
                    let items = self.pop_mark()?;
                    self.container(Value::Tuple, items)?
                }
                b'l' => {
                    let items = self.pop_mark()?;
                    self.container(Value::List, items)?
                }
                b'd' => {
                    let items = self.pop_mark()?;
                    if items.len() % 2 != 0 {
                        return Err(Error::weights("malformed pickle: odd number of dict items"));
                    }
                    self.container(|values| Value::Dict(pairs(values).unwrap_or_default()), items)?
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    if self.stack.len() < n {
                        return Err(Error::weights("malformed pickle: short tuple"));
                    }
                    let items = self.stack.split_off(self.stack.len() - n);
                    self.container(Value::Tuple, items)?
                }
                b'a' => {
                    let item = self.pop()?;
                    self.append(vec![item])?
                }
                b'e' => {
                    let items = self.pop_mark()?;
                    self.append(items)?
                }
                b's' => {
                    let value = self.pop()?;
                    let key = self.pop()?;
                    self.set_items(vec![key, value])?
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    self.set_items(items)?
                }
                b'c' => {
                    let module = self.cursor.line()?.to_string();
                    let name = self.cursor.line()?.to_string();
                    let payload = module.len() + name.len();
                    self.leaf(global(module, name)?, payload)?
                }
                0x93 => {
                    let name = self.pop()?.value;
                    let module = self.pop()?.value;
                    match (module, name) {
                        (Value::Str(m), Value::Str(n)) => self.leaf(global(m, n)?, 0)?,
                        _ => return Err(Error::weights("malformed pickle: STACK_GLOBAL")),
                    }
                }
                b'R' | 0x81 => {
                    let args = self.pop()?;
                    if !matches!(args.value, Value::Tuple(_)) {
                        return Err(Error::weights("malformed pickle: REDUCE without tuple"));
                    }
                    let callable = self.pop()?;
                    self.container(
                        |mut both| {
                            let Some(Value::Tuple(args)) = both.pop() else { unreachable!("checked above") };
                            let callable = Box::new(both.pop().unwrap_or(Value::None));
                            Value::Call { callable, args, items: Vec::new() }
                        },
                        vec![callable, args],
                    )?
                }
                b'b' => {
                    // BUILD sets object state; a state dict's only state is `_metadata`.
                    self.pop()?;
                }
                b'Q' => {
                    let pid = self.pop()?;
                    self.container(|mut pid| Value::PersistentId(Box::new(pid.pop().unwrap_or(Value::None))), vec![pid])?
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
    fn memo_recalls_cannot_multiply_memory() {
        // [1], then a list of two recalls of the previous list, doubled 30 times: 2^30 copies.
        let mut pickle = b"\x80\x02]K\x01aq\x00".to_vec();
        for k in 1..=30u8 {
            pickle.extend([b'(', b'h', k - 1, b'h', k - 1, b'l', b'q', k]);
        }
        pickle.push(b'.');
        let err = load_all(&pickle).unwrap_err().to_string();
        assert!(err.contains("builds more than 64 MB of values"), "{err}");
        // Ten doublings are fine: a recall is a copy, paid for once.
        let mut small = b"\x80\x02]K\x01aq\x00".to_vec();
        for k in 1..=10u8 {
            small.extend([b'(', b'h', k - 1, b'h', k - 1, b'l', b'q', k]);
        }
        small.push(b'.');
        assert!(matches!(load_all(&small).unwrap(), Value::List(items) if items.len() == 2));
    }

    #[test]
    fn nesting_is_limited_whatever_builds_it() {
        let deep = |open: &[u8], close: &[u8], n: usize| {
            let mut p = b"\x80\x02".to_vec();
            for _ in 0..n {
                p.extend(open);
            }
            for _ in 0..n.saturating_sub(1) {
                p.extend(close);
            }
            p.push(b'.');
            p
        };
        let cases = [
            deep(b"]", b"a", 300_000),        // lists appended into lists
            deep(b"(", b"t", 10_000),         // MARK ... TUPLE, nested
            deep(b"", b"\x85", 10_000),       // TUPLE1 of TUPLE1 ... of None
            deep(b"K\x01}", b"s", 10_000),     // dicts as values
        ];
        for (i, pickle) in cases.iter().enumerate() {
            let pickle = if i == 2 { [&b"\x80\x02N"[..], &pickle[2..]].concat() } else { pickle.clone() };
            let err = load_all(&pickle).unwrap_err().to_string();
            assert!(err.contains("nested more than 100 deep"), "case {i}: {err}");
        }
        assert!(load_all(&deep(b"]", b"a", 100)).is_ok(), "100 deep is allowed");
    }

    #[test]
    fn malformed_pickles_are_errors_not_panics() {
        for pickle in [&b""[..], b"\x80", b"\x80\x02.", b"\x80\x02(u.", b"\x80\x02h\x05.", b"\x80\x02K\x01R.", b"\xff"] {
            assert!(load_all(pickle).is_err(), "{pickle:?}");
        }
    }
}
