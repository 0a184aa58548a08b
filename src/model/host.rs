//! Direct access to the host memory of CPU tensors, for the fused CPU training path, the
//! optimizer and the gradient norm; other devices fall back to tensor operations.

use super::params::Params;
use candle_core::{CpuStorage, InplaceOp2, Layout, Result, Storage, StorageRef, Tensor};
use std::cell::RefCell;

/// Runs `f` on the f32 elements of `t` when it is a contiguous CPU tensor; `None` otherwise.
pub fn with_host_slice<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<Option<R>> {
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        return Ok(None);
    };
    let Some((start, end)) = layout.contiguous_offsets() else {
        return Ok(None);
    };
    match cpu {
        CpuStorage::F32(values) => Ok(Some(f(&values[start..end]))),
        _ => Ok(None),
    }
}

/// An in-place update of a CPU tensor from another (its gradient): `f(dst, src)`.
struct Update<F: FnMut(&mut [f32], &[f32])>(RefCell<F>);

impl<F: FnMut(&mut [f32], &[f32])> InplaceOp2 for Update<F> {
    fn name(&self) -> &'static str {
        "host-update"
    }

    fn cpu_fwd(&self, s1: &mut CpuStorage, l1: &Layout, s2: &CpuStorage, l2: &Layout) -> Result<()> {
        let (Some((a0, a1)), Some((b0, b1))) = (l1.contiguous_offsets(), l2.contiguous_offsets()) else {
            candle_core::bail!("host-update: non-contiguous operands");
        };
        match (s1, s2) {
            (CpuStorage::F32(dst), CpuStorage::F32(src)) => {
                (self.0.borrow_mut())(&mut dst[a0..a1], &src[b0..b1]);
                Ok(())
            }
            _ => candle_core::bail!("host-update: f32 operands expected"),
        }
    }
}

/// Whether `t` lives in host memory (and in-place host updates apply to it).
pub fn is_host(t: &Tensor) -> bool {
    t.device().is_cpu()
}

/// Applies `f(dst, src)` to the elements of the CPU tensors `dst` (in place) and `src`.
pub fn update_in_place(dst: &Tensor, src: &Tensor, f: impl FnMut(&mut [f32], &[f32])) -> Result<()> {
    let src = src.contiguous()?;
    dst.inplace_op2(&src, &Update(RefCell::new(f)))
}

/// Read access to every parameter's values in host memory, held for one forward and
/// backward pass (the optimizer takes write access afterwards).
pub struct HostWeights<'a> {
    guards: Vec<(StorageRef<'a>, (usize, usize))>,
}

impl<'a> HostWeights<'a> {
    /// `None` unless every parameter is a contiguous f32 CPU tensor.
    pub fn new(params: &'a Params) -> Option<HostWeights<'a>> {
        let guards = params
            .iter()
            .map(|(_, var)| {
                let (storage, layout) = var.storage_and_layout();
                let range = layout.contiguous_offsets()?;
                matches!(&*storage, Storage::Cpu(CpuStorage::F32(_))).then_some((storage, range))
            })
            .collect::<Option<Vec<_>>>()?;
        Some(HostWeights { guards })
    }

    /// The values of the `i`-th parameter.
    pub fn get(&self, i: usize) -> &[f32] {
        let (storage, (start, end)) = &self.guards[i];
        match &**storage {
            Storage::Cpu(CpuStorage::F32(values)) => &values[*start..*end],
            _ => unreachable!("checked in HostWeights::new"),
        }
    }
}
