//! The guest-facing half of `wasi:blobstore`: resources in the table, calls
//! forwarded to the backend.

use std::sync::Arc;

use wasmtime::component::Resource;
use wasmtime_wasi_io::streams::{DynInputStream, DynOutputStream};

use super::{
    BlobstoreBackend, BlobstoreError, BlobstoreView, Container, ContainerMetadata, IncomingValue,
    ObjectId, ObjectMetadata, OutgoingValue, StreamObjectNames, blobstore, container, types,
};

type Result<T, E = wasmtime::Error> = std::result::Result<T, E>;
type BlobResult<T> = Result<T, BlobstoreError>;

impl BlobstoreView<'_> {
    fn container(
        &self,
        c: &Resource<Container>,
    ) -> BlobResult<(Arc<dyn BlobstoreBackend>, String)> {
        Ok((self.backend.clone(), self.table.get(c)?.name.clone()))
    }

    fn open(&mut self, name: String) -> BlobResult<Resource<Container>> {
        Ok(self.table.push(Container { name })?)
    }
}

impl blobstore::Host for BlobstoreView<'_> {
    async fn create_container(&mut self, name: String) -> BlobResult<Resource<Container>> {
        self.backend.create_container(&name).await?;
        self.open(name)
    }

    async fn get_container(&mut self, name: String) -> BlobResult<Resource<Container>> {
        self.backend.container_info(&name).await?;
        self.open(name)
    }

    async fn delete_container(&mut self, name: String) -> BlobResult<()> {
        self.backend.delete_container(&name).await
    }

    async fn container_exists(&mut self, name: String) -> BlobResult<bool> {
        self.backend.container_exists(&name).await
    }

    async fn copy_object(&mut self, src: ObjectId, dest: ObjectId) -> BlobResult<()> {
        self.backend.copy_object(&src, &dest).await
    }

    async fn move_object(&mut self, src: ObjectId, dest: ObjectId) -> BlobResult<()> {
        self.backend.move_object(&src, &dest).await
    }
}

impl container::Host for BlobstoreView<'_> {}

impl container::HostContainer for BlobstoreView<'_> {
    async fn name(&mut self, c: Resource<Container>) -> BlobResult<String> {
        Ok(self.container(&c)?.1)
    }

    async fn info(&mut self, c: Resource<Container>) -> BlobResult<ContainerMetadata> {
        let (backend, name) = self.container(&c)?;
        backend.container_info(&name).await
    }

    async fn get_data(
        &mut self,
        c: Resource<Container>,
        object: String,
        start: u64,
        end: u64,
    ) -> BlobResult<Resource<IncomingValue>> {
        let (backend, name) = self.container(&c)?;
        let body = backend.read_object(&name, &object, start, end).await?;
        Ok(self.table.push(IncomingValue::new(body))?)
    }

    async fn write_data(
        &mut self,
        c: Resource<Container>,
        object: String,
        value: Resource<OutgoingValue>,
    ) -> BlobResult<()> {
        let (backend, name) = self.container(&c)?;
        self.table
            .get_mut(&value)?
            .start_upload(backend, name, object)
    }

    async fn list_objects(
        &mut self,
        c: Resource<Container>,
    ) -> BlobResult<Resource<StreamObjectNames>> {
        let (backend, name) = self.container(&c)?;
        let names = backend.list_objects(&name).await?.into_iter();
        Ok(self.table.push(StreamObjectNames { names })?)
    }

    async fn delete_object(&mut self, c: Resource<Container>, object: String) -> BlobResult<()> {
        let (backend, name) = self.container(&c)?;
        backend.delete_objects(&name, &[object]).await
    }

    async fn delete_objects(
        &mut self,
        c: Resource<Container>,
        objects: Vec<String>,
    ) -> BlobResult<()> {
        let (backend, name) = self.container(&c)?;
        backend.delete_objects(&name, &objects).await
    }

    async fn has_object(&mut self, c: Resource<Container>, object: String) -> BlobResult<bool> {
        let (backend, name) = self.container(&c)?;
        Ok(backend.object_info(&name, &object).await?.is_some())
    }

    async fn object_info(
        &mut self,
        c: Resource<Container>,
        object: String,
    ) -> BlobResult<ObjectMetadata> {
        let (backend, name) = self.container(&c)?;
        backend.object_info(&name, &object).await?.ok_or_else(|| {
            BlobstoreError(format!(
                "object `{object}` does not exist in container `{name}`"
            ))
        })
    }

    async fn clear(&mut self, c: Resource<Container>) -> BlobResult<()> {
        let (backend, name) = self.container(&c)?;
        backend.clear(&name).await
    }

    async fn drop(&mut self, c: Resource<Container>) -> Result<()> {
        self.table.delete(c)?;
        Ok(())
    }
}

impl container::HostStreamObjectNames for BlobstoreView<'_> {
    async fn read_stream_object_names(
        &mut self,
        s: Resource<StreamObjectNames>,
        len: u64,
    ) -> BlobResult<(Vec<String>, bool)> {
        let names = &mut self.table.get_mut(&s)?.names;
        let take = usize::try_from(len).unwrap_or(usize::MAX);
        let page: Vec<String> = names.by_ref().take(take).collect();
        Ok((page, names.len() == 0))
    }

    async fn skip_stream_object_names(
        &mut self,
        s: Resource<StreamObjectNames>,
        num: u64,
    ) -> BlobResult<(u64, bool)> {
        let names = &mut self.table.get_mut(&s)?.names;
        let take = usize::try_from(num).unwrap_or(usize::MAX);
        let skipped = names.by_ref().take(take).count();
        Ok((skipped as u64, names.len() == 0))
    }

    async fn drop(&mut self, s: Resource<StreamObjectNames>) -> Result<()> {
        self.table.delete(s)?;
        Ok(())
    }
}

impl types::Host for BlobstoreView<'_> {
    fn convert_error(&mut self, err: BlobstoreError) -> Result<types::Error> {
        Ok(err.0)
    }
}

impl types::HostOutgoingValue for BlobstoreView<'_> {
    async fn new_outgoing_value(&mut self) -> Result<Resource<OutgoingValue>> {
        Ok(self.table.push(OutgoingValue::default())?)
    }

    async fn outgoing_value_write_body(
        &mut self,
        value: Resource<OutgoingValue>,
    ) -> Result<Result<Resource<DynOutputStream>, ()>> {
        let Some(writer) = self.table.get_mut(&value)?.take_stream() else {
            return Ok(Err(()));
        };
        let stream: DynOutputStream = Box::new(writer);
        Ok(Ok(self.table.push(stream)?))
    }

    async fn finish(&mut self, value: Resource<OutgoingValue>) -> BlobResult<()> {
        self.table.delete(value)?.finish().await
    }

    async fn drop(&mut self, value: Resource<OutgoingValue>) -> Result<()> {
        self.table.delete(value)?;
        Ok(())
    }
}

impl types::HostIncomingValue for BlobstoreView<'_> {
    async fn incoming_value_consume_sync(
        &mut self,
        value: Resource<IncomingValue>,
    ) -> BlobResult<Vec<u8>> {
        self.table.delete(value)?.collect().await
    }

    async fn incoming_value_consume_async(
        &mut self,
        value: Resource<IncomingValue>,
    ) -> BlobResult<Resource<DynInputStream>> {
        let stream: DynInputStream = Box::new(self.table.delete(value)?.into_stream());
        Ok(self.table.push(stream)?)
    }

    async fn size(&mut self, value: Resource<IncomingValue>) -> Result<u64> {
        Ok(self.table.get(&value)?.size())
    }

    async fn drop(&mut self, value: Resource<IncomingValue>) -> Result<()> {
        self.table.delete(value)?;
        Ok(())
    }
}
