"""The Ray Train runtime every trainer shares: where training runs (a local Ray, a Ray job on a
long-running cluster, or a KubeRay RayJob), the resumable per-epoch loop pieces, and the array
columns of the files Ray Data shards across workers."""
