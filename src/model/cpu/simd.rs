//! Four-lane vectors: wasm simd128 (the page; `+simd128` in .cargo/config.toml), SSE on x86-64
//! (its baseline), plain arrays elsewhere. Multiply then add: neither simd128 nor baseline
//! x86-64 has a fused multiply-add.

use std::mem::MaybeUninit;

/// Neighbouring outputs of a row accumulated together: two 128-bit vectors.
pub const LANES: usize = 8;

/// Writes one chunk's sums (`[low, high]`, [`LANES`] outputs) into `row`, which holds the
/// chunk's first `row.len()` outputs (fewer at the end of a row): stored directly when whole.
#[inline(always)]
pub fn store_lanes(row: &mut [MaybeUninit<f32>], [low, high]: [V; 2]) {
    if row.len() == LANES {
        store(&mut row[..4], low);
        store(&mut row[4..], high);
    } else {
        let mut lanes = [MaybeUninit::uninit(); LANES];
        store(&mut lanes[..4], low);
        store(&mut lanes[4..], high);
        row.copy_from_slice(&lanes[..row.len()]);
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod arch {
    use core::arch::wasm32::*;
    use std::mem::MaybeUninit;
    pub type V = v128;
    #[inline(always)]
    pub fn zero() -> V {
        f32x4_splat(0.0)
    }
    #[inline(always)]
    pub fn splat(x: f32) -> V {
        f32x4_splat(x)
    }
    /// # Safety
    /// `p` must point at 4 readable `f32`s.
    #[inline(always)]
    pub unsafe fn load(p: *const f32) -> V {
        unsafe { v128_load(p as *const v128) }
    }
    #[inline(always)]
    pub fn mul_add(a: V, b: V, acc: V) -> V {
        f32x4_add(acc, f32x4_mul(a, b))
    }
    #[inline(always)]
    pub fn store(out: &mut [MaybeUninit<f32>], v: V) {
        let out = &mut out[..4];
        unsafe { v128_store(out.as_mut_ptr() as *mut v128, v) }
    }
    /// `[a0, a2, b0, b2]`
    #[inline(always)]
    pub fn evens(a: V, b: V) -> V {
        i32x4_shuffle::<0, 2, 4, 6>(a, b)
    }
    /// `[a1, a3, b1, b3]`
    #[inline(always)]
    pub fn odds(a: V, b: V) -> V {
        i32x4_shuffle::<1, 3, 5, 7>(a, b)
    }
    /// `[a1, a2, a3, b0]`
    #[inline(always)]
    pub fn shift_in(a: V, b: V) -> V {
        i32x4_shuffle::<1, 2, 3, 4>(a, b)
    }
}

#[cfg(target_arch = "x86_64")]
mod arch {
    use core::arch::x86_64::*;
    use std::mem::MaybeUninit;
    pub type V = __m128;
    #[inline(always)]
    pub fn zero() -> V {
        unsafe { _mm_setzero_ps() }
    }
    #[inline(always)]
    pub fn splat(x: f32) -> V {
        unsafe { _mm_set1_ps(x) }
    }
    /// # Safety
    /// `p` must point at 4 readable `f32`s.
    #[inline(always)]
    pub unsafe fn load(p: *const f32) -> V {
        unsafe { _mm_loadu_ps(p) }
    }
    #[inline(always)]
    pub fn mul_add(a: V, b: V, acc: V) -> V {
        unsafe { _mm_add_ps(acc, _mm_mul_ps(a, b)) }
    }
    #[inline(always)]
    pub fn store(out: &mut [MaybeUninit<f32>], v: V) {
        let out = &mut out[..4];
        unsafe { _mm_storeu_ps(out.as_mut_ptr() as *mut f32, v) }
    }
    /// `[a0, a2, b0, b2]`
    #[inline(always)]
    pub fn evens(a: V, b: V) -> V {
        unsafe { _mm_shuffle_ps::<0b10_00_10_00>(a, b) }
    }
    /// `[a1, a3, b1, b3]`
    #[inline(always)]
    pub fn odds(a: V, b: V) -> V {
        unsafe { _mm_shuffle_ps::<0b11_01_11_01>(a, b) }
    }
    /// `[a1, a2, a3, b0]`: `[a3, a3, b0, b0]` first, then lanes 1 and 2 of `a` with lanes 0
    /// and 2 of that (SSE2 has no byte shift across two registers).
    #[inline(always)]
    pub fn shift_in(a: V, b: V) -> V {
        unsafe { _mm_shuffle_ps::<0b10_00_10_01>(a, _mm_shuffle_ps::<0b00_00_11_11>(a, b)) }
    }
}

#[cfg(not(any(all(target_arch = "wasm32", target_feature = "simd128"), target_arch = "x86_64")))]
mod arch {
    use std::mem::MaybeUninit;
    pub type V = [f32; 4];
    #[inline(always)]
    pub fn zero() -> V {
        [0.0; 4]
    }
    #[inline(always)]
    pub fn splat(x: f32) -> V {
        [x; 4]
    }
    /// # Safety
    /// `p` must point at 4 readable `f32`s.
    #[inline(always)]
    pub unsafe fn load(p: *const f32) -> V {
        unsafe { core::ptr::read_unaligned(p as *const V) }
    }
    #[inline(always)]
    pub fn mul_add(a: V, b: V, acc: V) -> V {
        std::array::from_fn(|i| acc[i] + a[i] * b[i])
    }
    #[inline(always)]
    pub fn store(out: &mut [MaybeUninit<f32>], v: V) {
        out[..4].write_copy_of_slice(&v);
    }
    /// `[a0, a2, b0, b2]`
    #[inline(always)]
    pub fn evens(a: V, b: V) -> V {
        [a[0], a[2], b[0], b[2]]
    }
    /// `[a1, a3, b1, b3]`
    #[inline(always)]
    pub fn odds(a: V, b: V) -> V {
        [a[1], a[3], b[1], b[3]]
    }
    /// `[a1, a2, a3, b0]`
    #[inline(always)]
    pub fn shift_in(a: V, b: V) -> V {
        [a[1], a[2], a[3], b[0]]
    }
}

pub use arch::*;
