//! Pooled backbone features, computed once per image. With a frozen backbone the features of
//! an image never change, so head epochs only ever touch these vectors.

use std::collections::HashMap;

use burn::tensor::Tensor;

use crate::data::{LabelledImage, to_input_tensor};
use crate::error::{Error, Result};
use crate::model::{Backbone, BackboneSpec};

use super::CenterPrefixes;

#[derive(Debug, Default)]
pub struct FeatureCache {
    by_image: HashMap<u32, Vec<f32>>,
}

impl FeatureCache {
    pub fn get(&self, image_id: u32) -> Option<&[f32]> {
        self.by_image.get(&image_id).map(Vec::as_slice)
    }

    pub fn len(&self) -> usize {
        self.by_image.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_image.is_empty()
    }

    pub fn contains(&self, image_id: u32) -> bool {
        self.by_image.contains_key(&image_id)
    }

    /// Forgets images that are no longer in the set.
    pub fn retain(&mut self, keep: impl Fn(u32) -> bool) {
        self.by_image.retain(|id, _| keep(*id));
    }

    /// Runs the backbone (inference mode: BatchNorm uses its running statistics) on one batch
    /// and caches each image's feature vector.
    pub async fn extract(&mut self, backbone: &Backbone, spec: &BackboneSpec, batch: &[&LabelledImage]) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let input = center_views(backbone, spec, batch);
        self.insert(batch, backbone.forward(input)).await
    }

    /// [`extract`](Self::extract) that also keeps, in `centers`, each picture's prefix output at
    /// `centers`' tail unit: the same forward pass, run as prefix then tail, so phase 2's cache
    /// need not run the prefix again on these center views.
    pub async fn extract_with_prefixes(
        &mut self,
        backbone: &Backbone,
        spec: &BackboneSpec,
        batch: &[&LabelledImage],
        centers: &mut CenterPrefixes,
    ) -> Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let first = centers.first_tail_unit();
        let prefix = backbone.forward_prefix(center_views(backbone, spec, batch), first);
        let features = backbone.forward_tail(prefix.clone(), first);
        let ids: Vec<u32> = batch.iter().map(|i| i.id).collect();
        centers.insert(&ids, prefix).await?;
        self.insert(batch, features).await
    }

    /// Caches the rows of `features` (`[batch, features]`) as the feature vectors of `batch`.
    async fn insert(&mut self, batch: &[&LabelledImage], features: Tensor<2>) -> Result<()> {
        let [_, dim] = features.dims();
        let data = features.into_data_async().await.map_err(|e| Error::read_back("reading features", e))?;
        let values = data.try_to_vec_as::<f32>().map_err(|e| Error::read_back("reading tensor data", e))?;
        let ids: Vec<u32> = batch.iter().map(|image| image.id).collect();
        self.insert_rows(&ids, dim, &values)
    }

    /// Caches `values`, rows of `dim` one after the other, as the feature vectors of the
    /// pictures `ids`, in order.
    pub(crate) fn insert_rows(&mut self, ids: &[u32], dim: usize, values: &[f32]) -> Result<()> {
        if values.len() != ids.len() * dim {
            return Err(Error::Training(format!("{} feature values for {} pictures of {dim}", values.len(), ids.len())));
        }
        for (&id, row) in ids.iter().zip(values.chunks_exact(dim.max(1))) {
            self.by_image.insert(id, row.to_vec());
        }
        Ok(())
    }
}

/// The center views of `batch` as one input tensor on the backbone's device.
fn center_views(backbone: &Backbone, spec: &BackboneSpec, batch: &[&LabelledImage]) -> Tensor<4> {
    let views: Vec<_> = batch.iter().map(|i| i.center_view(spec)).collect();
    to_input_tensor(&views.iter().collect::<Vec<_>>(), spec, &backbone.device())
}
