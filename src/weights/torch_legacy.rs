//! Reader for PyTorch's legacy (pre-1.6, non-zip) `torch.save` format, the format the default
//! EfficientNet-Lite0 weights ship in. No torch needed.
//!
//! The file is a sequence of pickles: a magic number, a protocol version, a `sys_info` dict, the
//! saved object (a state dict whose tensors refer to storages through persistent ids), a list of
//! storage keys, and then, for each key in that order, an 8-byte little-endian element count
//! followed by the raw little-endian elements.
//!
//! The pickle machine below implements only the opcodes `torch.save` emits for a state dict and
//! refuses every global it does not know, so a hostile file cannot make it do anything but fail.

use std::collections::HashMap;

use super::tensor_map::{TensorEntry, TensorMap, TensorValues};
use crate::error::{Error, Result};

const LEGACY_MAGIC: u128 = 0x1950a86a20f9469cfc6c;

/// Reads a legacy `torch.save` state dict. Float tensors become `f32`, integer ones `i64`.
pub fn read_legacy_state_dict(bytes: &[u8]) -> Result<TensorMap> {
    let mut cursor = Cursor { bytes, pos: 0 };
    if bytes.starts_with(b"PK\x03\x04") {
        return Err(Error::weights(
            "this .pth file is in PyTorch's zip format (torch >= 1.6); it is not the legacy format",
        ));
    }
    match Unpickler::new(&mut cursor).load()? {
        Value::Int(magic) if magic as u128 == LEGACY_MAGIC => {}
        Value::BigInt(magic) if magic == LEGACY_MAGIC => {}
        _ => return Err(Error::weights("not a legacy PyTorch file (magic number missing)")),
    }
    match Unpickler::new(&mut cursor).load()? {
        Value::Int(1001) => {}
        other => return Err(Error::weights(format!("unsupported PyTorch protocol version {other:?}"))),
    }
    let _sys_info = Unpickler::new(&mut cursor).load()?;
    let state = Unpickler::new(&mut cursor).load()?;
    let keys = match Unpickler::new(&mut cursor).load()? {
        Value::List(keys) => keys
            .into_iter()
            .map(|k| match k {
                Value::Str(s) => Ok(s),
                other => Err(Error::weights(format!("storage key is not a string: {other:?}"))),
            })
            .collect::<Result<Vec<_>>>()?,
        other => return Err(Error::weights(format!("expected the storage key list, found {other:?}"))),
    };

    // Storage element types come from the persistent ids inside the state dict.
    let mut tensors = Vec::new();
    collect_tensors(&state, &mut tensors)?;
    let dtypes: HashMap<&str, StorageType> =
        tensors.iter().map(|(_, t)| (t.storage_key.as_str(), t.storage_type)).collect();

    let mut storages: HashMap<String, StorageData> = HashMap::new();
    for key in keys {
        let count = cursor.u64_le()? as usize;
        let dtype = *dtypes
            .get(key.as_str())
            .ok_or_else(|| Error::weights(format!("storage {key} is not used by any tensor")))?;
        let raw = cursor.take(count.checked_mul(dtype.size()).ok_or_else(truncated)?)?;
        storages.insert(key, dtype.decode(raw));
    }

    let mut map = TensorMap::new();
    for (name, tensor) in tensors {
        let storage = storages
            .get(&tensor.storage_key)
            .ok_or_else(|| Error::weights(format!("{name}: storage {} missing", tensor.storage_key)))?;
        map.insert(name, tensor.materialize(storage)?);
    }
    Ok(map)
}

fn truncated() -> Error {
    Error::weights("weights file is truncated")
}

struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
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
    fn u64_le(&mut self) -> Result<u64> {
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
enum Value {
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

struct Unpickler<'c, 'a> {
    cursor: &'c mut Cursor<'a>,
    stack: Vec<Value>,
    memo: HashMap<u32, Value>,
}

impl<'c, 'a> Unpickler<'c, 'a> {
    fn new(cursor: &'c mut Cursor<'a>) -> Self {
        Self { cursor, stack: Vec::new(), memo: HashMap::new() }
    }

    fn pop(&mut self) -> Result<Value> {
        self.stack.pop().ok_or_else(|| Error::weights("malformed pickle: stack underflow"))
    }

    fn pop_mark(&mut self) -> Result<Vec<Value>> {
        let mark = self
            .stack
            .iter()
            .rposition(|v| *v == Value::Mark)
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
            other => Err(Error::weights(format!("malformed pickle: SETITEM on {other:?}"))),
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

/// Only the globals a state dict needs; anything else is refused.
fn global(module: String, name: String) -> Result<Value> {
    let allowed = matches!(
        (module.as_str(), name.as_str()),
        ("collections", "OrderedDict")
            | ("torch._utils", "_rebuild_tensor_v2")
            | ("torch._utils", "_rebuild_tensor")
            | ("torch", "FloatStorage" | "HalfStorage" | "DoubleStorage" | "LongStorage" | "IntStorage")
    );
    if !allowed {
        return Err(Error::weights(format!("weights file uses unsupported object {module}.{name}")));
    }
    Ok(Value::Global(module, name))
}

#[derive(Debug, Clone, Copy)]
enum StorageType {
    F32,
    F16,
    F64,
    I64,
    I32,
}

enum StorageData {
    F32(Vec<f32>),
    I64(Vec<i64>),
}

impl StorageType {
    fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "FloatStorage" => Self::F32,
            "HalfStorage" => Self::F16,
            "DoubleStorage" => Self::F64,
            "LongStorage" => Self::I64,
            "IntStorage" => Self::I32,
            _ => return None,
        })
    }
    fn size(self) -> usize {
        match self {
            Self::F32 | Self::I32 => 4,
            Self::F16 => 2,
            Self::F64 | Self::I64 => 8,
        }
    }
    fn decode(self, raw: &[u8]) -> StorageData {
        let chunks = raw.chunks_exact(self.size());
        match self {
            Self::F32 => StorageData::F32(chunks.map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()),
            Self::F16 => StorageData::F32(
                chunks.map(|c| half::f16::from_le_bytes(c.try_into().unwrap()).to_f32()).collect(),
            ),
            Self::F64 => {
                StorageData::F32(chunks.map(|c| f64::from_le_bytes(c.try_into().unwrap()) as f32).collect())
            }
            Self::I64 => StorageData::I64(chunks.map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect()),
            Self::I32 => {
                StorageData::I64(chunks.map(|c| i32::from_le_bytes(c.try_into().unwrap()) as i64).collect())
            }
        }
    }
}

struct TensorRef {
    storage_key: String,
    storage_type: StorageType,
    offset: usize,
    shape: Vec<usize>,
    stride: Vec<usize>,
}

impl TensorRef {
    /// Copies the (possibly strided) view out of its storage into a row-major tensor.
    fn materialize(&self, storage: &StorageData) -> Result<TensorEntry> {
        let count: usize = self.shape.iter().product();
        let mut indices = Vec::with_capacity(count);
        let mut index = vec![0usize; self.shape.len()];
        for _ in 0..count {
            indices.push(self.offset + index.iter().zip(&self.stride).map(|(i, s)| i * s).sum::<usize>());
            for d in (0..index.len()).rev() {
                index[d] += 1;
                if index[d] < self.shape[d] {
                    break;
                }
                index[d] = 0;
            }
        }
        let out_of_range = || Error::weights(format!("storage {} is too short for its tensor", self.storage_key));
        let values = match storage {
            StorageData::F32(data) => TensorValues::F32(
                indices.iter().map(|&i| data.get(i).copied().ok_or_else(out_of_range)).collect::<Result<_>>()?,
            ),
            StorageData::I64(data) => TensorValues::I64(
                indices.iter().map(|&i| data.get(i).copied().ok_or_else(out_of_range)).collect::<Result<_>>()?,
            ),
        };
        Ok(TensorEntry { shape: self.shape.clone(), values })
    }
}

fn as_usize(v: &Value) -> Result<usize> {
    match v {
        Value::Int(i) if *i >= 0 => Ok(*i as usize),
        other => Err(Error::weights(format!("expected a non-negative integer, found {other:?}"))),
    }
}

fn as_usizes(v: &Value) -> Result<Vec<usize>> {
    match v {
        Value::Tuple(items) | Value::List(items) => items.iter().map(as_usize).collect(),
        other => Err(Error::weights(format!("expected a tuple of sizes, found {other:?}"))),
    }
}

/// Walks the saved object and returns `(name, tensor)` for every tensor in it, in file order.
fn collect_tensors(state: &Value, out: &mut Vec<(String, TensorRef)>) -> Result<()> {
    let items = match state {
        Value::Dict(items) => items,
        Value::Call { callable, items, .. }
            if **callable == Value::Global("collections".into(), "OrderedDict".into()) =>
        {
            items
        }
        // Some checkpoints wrap the state dict: {"state_dict": {...}}.
        other => return Err(Error::weights(format!("expected a state dict, found {other:?}"))),
    };
    for (key, value) in items {
        let Value::Str(name) = key else {
            return Err(Error::weights(format!("state dict key is not a string: {key:?}")));
        };
        if let Value::Call { callable, args, .. } = value
            && matches!(&**callable, Value::Global(m, n) if m == "torch._utils" && n.starts_with("_rebuild_tensor"))
        {
            out.push((name.clone(), tensor_ref(name, args)?));
        } else if matches!(value, Value::Dict(_) | Value::Call { .. }) {
            // A nested dict such as {"state_dict": ...}: keep its tensors under their own names.
            collect_tensors(value, out)?;
        } else {
            return Err(Error::weights(format!("{name}: not a tensor")));
        }
    }
    Ok(())
}

fn tensor_ref(name: &str, args: &[Value]) -> Result<TensorRef> {
    let bad = || Error::weights(format!("{name}: unexpected tensor encoding"));
    let [Value::PersistentId(pid), offset, shape, stride, ..] = args else {
        return Err(bad());
    };
    let Value::Tuple(pid) = &**pid else { return Err(bad()) };
    let [Value::Str(kind), Value::Global(_, type_name), Value::Str(key), ..] = pid.as_slice() else {
        return Err(bad());
    };
    if kind != "storage" {
        return Err(bad());
    }
    let storage_type = StorageType::from_name(type_name)
        .ok_or_else(|| Error::weights(format!("{name}: unsupported storage type {type_name}")))?;
    Ok(TensorRef {
        storage_key: key.clone(),
        storage_type,
        offset: as_usize(offset)?,
        shape: as_usizes(shape)?,
        stride: as_usizes(stride)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-assembles a legacy file: the same opcodes torch 1.4 writes for
    /// `{"w": tensor([[1., 2.], [3., 4.]]).t()}` plus an int64 buffer.
    fn legacy_file() -> Vec<u8> {
        let mut f = Vec::new();
        // magic number as LONG1
        f.extend([0x80, 2, 0x8a, 10]);
        f.extend(&LEGACY_MAGIC.to_le_bytes()[..10]);
        f.push(b'.');
        f.extend([0x80, 2, b'M']);
        f.extend(1001u16.to_le_bytes());
        f.push(b'.');
        f.extend([0x80, 2, b'}', b'.']); // sys_info
        // state dict
        f.extend([0x80, 2]);
        f.extend(b"ccollections\nOrderedDict\nq\x00)R(");
        let tensor = |f: &mut Vec<u8>, name: &str, ty: &str, key: &str, size: u8, shape: &[u8], stride: &[u8]| {
            f.push(b'X');
            f.extend((name.len() as u32).to_le_bytes());
            f.extend(name.as_bytes());
            f.extend(b"ctorch._utils\n_rebuild_tensor_v2\n(");
            f.extend(b"(X\x07\x00\x00\x00storage");
            f.extend(format!("ctorch\n{ty}\n").as_bytes());
            f.push(b'X');
            f.extend((key.len() as u32).to_le_bytes());
            f.extend(key.as_bytes());
            f.extend(b"X\x03\x00\x00\x00cpuK");
            f.push(size);
            f.extend(b"tQK\x00(");
            for s in shape {
                f.extend([b'K', *s]);
            }
            f.extend(b"t(");
            for s in stride {
                f.extend([b'K', *s]);
            }
            f.extend(b"t\x89ccollections\nOrderedDict\n)Rtr\x05\x00\x00\x00");
            f.push(b'R');
        };
        tensor(&mut f, "w", "FloatStorage", "k0", 4, &[2, 2], &[1, 2]);
        tensor(&mut f, "n", "LongStorage", "k1", 1, &[], &[]);
        f.extend(b"u.");
        // storage keys
        f.extend(b"\x80\x02]q\x00(X\x02\x00\x00\x00k0X\x02\x00\x00\x00k1e.");
        f.extend(4u64.to_le_bytes());
        for v in [1f32, 2., 3., 4.] {
            f.extend(v.to_le_bytes());
        }
        f.extend(1u64.to_le_bytes());
        f.extend(7i64.to_le_bytes());
        f
    }

    #[test]
    fn reads_strided_float_and_int_tensors() {
        let map = read_legacy_state_dict(&legacy_file()).unwrap();
        let w = &map["w"];
        assert_eq!(w.shape, vec![2, 2]);
        // stride (1, 2) is the transpose of [[1, 2], [3, 4]]
        assert_eq!(w.as_f32().unwrap(), &[1., 3., 2., 4.]);
        assert_eq!(map["n"].values, TensorValues::I64(vec![7]));
        assert_eq!(map["n"].shape, Vec::<usize>::new());
    }

    #[test]
    fn truncated_file_is_an_error_not_a_panic() {
        let file = legacy_file();
        for cut in [3, 20, 60, file.len() - 9, file.len() - 1] {
            let err = read_legacy_state_dict(&file[..cut]).unwrap_err().to_string();
            assert!(!err.is_empty(), "cut at {cut}");
        }
    }

    #[test]
    fn refuses_unknown_globals() {
        let mut file = legacy_file();
        let at = file.windows(11).position(|w| w == b"collections").unwrap();
        file.splice(at..at + 11, b"os.systemxx".iter().copied());
        let err = read_legacy_state_dict(&file).unwrap_err().to_string();
        assert!(err.contains("unsupported object os.systemxx"), "{err}");
    }

    #[test]
    fn zip_files_are_named_as_such() {
        let err = read_legacy_state_dict(b"PK\x03\x04rest").unwrap_err().to_string();
        assert!(err.contains("zip format"), "{err}");
    }
}
