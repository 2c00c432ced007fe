//! `Tensor`: a host-side, C-order (row-major) f32 array with its shape.

use crate::error::{Error, Result};

/// A dense f32 tensor in host memory, C order: the last index varies fastest.
///
/// Input is `[N, C, H, W]`, weight `[O, C/groups, kh, kw]`, bias `[O]`, output `[N, O, P, Q]`.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: Vec<f32>,
}

impl Tensor {
    /// Wraps `data` (C order) with `shape`.
    ///
    /// # Errors
    /// [`Error::DataLength`] when `data.len()` is not the product of `shape`;
    /// [`Error::SizeOverflow`] when the product of its non-zero dimensions exceeds `isize::MAX`.
    pub fn new(shape: impl Into<Vec<usize>>, data: Vec<f32>) -> Result<Self> {
        let shape = shape.into();
        let expected = element_count(&shape)?;
        if expected != data.len() {
            return Err(Error::DataLength {
                what: "tensor",
                shape,
                expected,
                got: data.len(),
            });
        }
        Ok(Tensor { shape, data })
    }

    /// A tensor whose element at flat index `i` is `f(i)`.
    ///
    /// # Errors
    /// [`Error::SizeOverflow`] when the element count overflows; [`Error::HostMemory`] when the
    /// memory cannot be had.
    pub fn from_fn(shape: impl Into<Vec<usize>>, f: impl FnMut(usize) -> f32) -> Result<Self> {
        let shape = shape.into();
        let len = element_count(&shape)?;
        // Ask for the memory first, so an absurd shape is an error rather than an abort.
        let mut data =
            crate::memory::try_with_capacity(len, || format!("a tensor of shape {shape:?}"))?;
        data.extend((0..len).map(f));
        Ok(Tensor { shape, data })
    }

    /// A tensor filled with `value`.
    ///
    /// # Errors
    /// As [`Tensor::from_fn`].
    pub fn full(shape: impl Into<Vec<usize>>, value: f32) -> Result<Self> {
        Self::from_fn(shape, |_| value)
    }

    /// The shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// The elements in C order.
    pub fn data(&self) -> &[f32] {
        &self.data
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.data.len()
    }

    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Takes the elements out.
    pub fn into_data(self) -> Vec<f32> {
        self.data
    }

    /// A weight `[O, C/groups, *kernel]` with its kernel turned 180 degrees: reversed along every
    /// spatial axis, which is each `[*kernel]` block read backwards. A convolution with
    /// [`flip_kernel`](crate::ConvNdParams::flip_kernel) is the cross-correlation with this
    /// weight. Tensors of fewer than 3 dimensions have no kernel axes and come back as they are.
    ///
    /// # Errors
    /// [`Error::HostMemory`] when the copy's memory cannot be had.
    pub fn kernel_turned(&self) -> Result<Tensor> {
        let taps: usize = self.shape.get(2..).map_or(1, |k| k.iter().product());
        let mut data = crate::memory::try_with_capacity(self.len(), || {
            format!("the turned kernel of a weight {:?}", self.shape)
        })?;
        for block in self.data.chunks(taps.max(1)) {
            data.extend(block.iter().rev());
        }
        Ok(Tensor {
            shape: self.shape.clone(),
            data,
        })
    }
}

/// The number of elements of `shape`, checked as ndarray checks it: the product of the non-zero
/// dimensions must not exceed `isize::MAX`, even when a zero dimension makes the tensor empty
/// (`[usize::MAX, 0]` has no elements, but no array can have that shape).
fn element_count(shape: &[usize]) -> Result<usize> {
    let non_zero = shape
        .iter()
        .filter(|&&d| d != 0)
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|&n| n <= isize::MAX as usize)
        .ok_or_else(|| Error::SizeOverflow {
            what: format!("element count of shape {shape:?}"),
        })?;
    Ok(if shape.contains(&0) { 0 } else { non_zero })
}

impl crate::spec::Shaped for Tensor {
    fn dims(&self) -> &[usize] {
        self.shape()
    }
}

#[cfg(feature = "ndarray")]
impl Tensor {
    /// Converts into an `ndarray` array of the same shape (no copy).
    pub fn into_ndarray(self) -> ndarray::ArrayD<f32> {
        // Shape and length were checked at construction, by ndarray's rule (`element_count`).
        ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&self.shape), self.data)
            .expect("length matches shape by construction")
    }

    /// Copies an `ndarray` array or view of any layout (transposed, sliced, strided) into a C-order
    /// tensor, element by element in logical order, so the values mean what the array means.
    pub fn from_ndarray<S, D>(array: &ndarray::ArrayBase<S, D>) -> Self
    where
        S: ndarray::Data<Elem = f32>,
        D: ndarray::Dimension,
    {
        let shape = array.shape().to_vec();
        let data = match array.as_slice() {
            // Already C-order and contiguous: one copy.
            Some(slice) => slice.to_vec(),
            None => array.iter().copied().collect(),
        };
        Tensor { shape, data }
    }
}
