// Reading a .safetensors file: 8-byte little-endian header length, a JSON header, then data.

const DTYPE_BYTES = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

export function parseSafetensors(bytes) {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (buffer.length < 8) throw new Error(`safetensors: file of ${buffer.length} bytes has no header`);
  const headerLength = Number(buffer.readBigUInt64LE(0));
  if (8 + headerLength > buffer.length) throw new Error(`safetensors: header length ${headerLength} exceeds the file`);
  const header = JSON.parse(buffer.subarray(8, 8 + headerLength).toString('utf8'));
  const data = buffer.subarray(8 + headerLength);
  const metadata = header.__metadata__ ?? {};
  const tensors = new Map();
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const [begin, end] = info.data_offsets;
    const count = info.shape.reduce((a, b) => a * b, 1);
    const width = DTYPE_BYTES[info.dtype];
    if (width === undefined) throw new Error(`safetensors: ${name} has unknown dtype ${info.dtype}`);
    if (end - begin !== count * width || end > data.length) {
      throw new Error(`safetensors: ${name} ${info.dtype}${JSON.stringify(info.shape)} has bad offsets [${begin}, ${end}]`);
    }
    tensors.set(name, { dtype: info.dtype, shape: info.shape, bytes: data.subarray(begin, end) });
  }
  return { metadata, tensors };
}

function halfToFloat(bits) {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 31) return fraction ? NaN : sign * Infinity;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

/** The tensor's values as numbers (float dtypes only). */
export function floatValues({ dtype, bytes }) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = [];
  switch (dtype) {
    case 'F32':
      for (let i = 0; i < bytes.length; i += 4) out.push(view.getFloat32(i, true));
      return out;
    case 'F64':
      for (let i = 0; i < bytes.length; i += 8) out.push(view.getFloat64(i, true));
      return out;
    case 'F16':
      for (let i = 0; i < bytes.length; i += 2) out.push(halfToFloat(view.getUint16(i, true)));
      return out;
    case 'BF16':
      for (let i = 0; i < bytes.length; i += 2) {
        const f = new DataView(new ArrayBuffer(4));
        f.setUint32(0, view.getUint16(i, true) << 16);
        out.push(f.getFloat32(0));
      }
      return out;
    default:
      throw new Error(`not a float dtype: ${dtype}`);
  }
}

export const isFloat = (dtype) => ['F32', 'F64', 'F16', 'BF16'].includes(dtype);
