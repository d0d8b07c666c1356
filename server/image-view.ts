// An image as the API shows it: the catalog's record with its time as ISO 8601, the
// wire's `ImageInfo`. Shared by the routes and the in-process repository adapter, which
// must not load the HTTP layer to answer the same way.
import type { ImageRecord } from './catalog/catalog.js';

export function imageView(image: ImageRecord) {
  return { ...image, createdAt: new Date(image.createdAt).toISOString() };
}
export type ImageView = ReturnType<typeof imageView>;
