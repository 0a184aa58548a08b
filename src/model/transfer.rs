//! Every copy between host memory and a tensor's device that the graph engine makes goes
//! through here and is counted (per thread), so tests can show what a training step copies.
//! On the CPU the "copies" are allocations; on a GPU each is a transfer over the bus, and a
//! download also waits for the device to finish its queued work.

use candle_core::{Device, Result, Shape, Tensor, WithDType};
use std::cell::Cell;

/// Copies counted so far on this thread.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Transfers {
    /// Host -> device copies.
    pub to_device: u64,
    /// Device -> host copies (each one a synchronisation on a GPU).
    pub to_host: u64,
}

impl Transfers {
    /// The copies made since `earlier`.
    pub fn since(self, earlier: Transfers) -> Transfers {
        Transfers { to_device: self.to_device - earlier.to_device, to_host: self.to_host - earlier.to_host }
    }

    /// Element-wise maximum (the worst step).
    pub fn max(self, other: Transfers) -> Transfers {
        Transfers { to_device: self.to_device.max(other.to_device), to_host: self.to_host.max(other.to_host) }
    }
}

thread_local! {
    static COUNTS: Cell<Transfers> = const { Cell::new(Transfers { to_device: 0, to_host: 0 }) };
}

/// The copies this thread has made so far.
pub fn counts() -> Transfers {
    COUNTS.with(Cell::get)
}

fn count(f: impl FnOnce(&mut Transfers)) {
    COUNTS.with(|c| {
        let mut t = c.get();
        f(&mut t);
        c.set(t);
    });
}

/// Host values as a tensor on `device`: one host -> device copy.
pub fn upload<D: WithDType, S: Into<Shape>>(values: &[D], shape: S, device: &Device) -> Result<Tensor> {
    count(|t| t.to_device += 1);
    Tensor::from_slice(values, shape, device)
}

/// A tensor's values in host memory, flattened: one device -> host copy.
pub fn download<D: WithDType>(t: &Tensor) -> Result<Vec<D>> {
    count(|c| c.to_host += 1);
    t.flatten_all()?.to_vec1::<D>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_are_counted_per_direction() {
        let before = counts();
        let t = upload(&[1.0f32, 2.0], 2, &Device::Cpu).unwrap();
        let back: Vec<f32> = download(&t).unwrap();
        assert_eq!(back, [1.0, 2.0]);
        assert_eq!(counts().since(before), Transfers { to_device: 1, to_host: 1 });
    }
}
