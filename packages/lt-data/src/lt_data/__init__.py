"""lt-data: image files, decoding and batched on-device view augmentations.

Workers read and decode images to fixed-size uint8 tensors (:class:`ImageDataset`,
:func:`collate_images`); the batch then goes to the accelerator, where the module of
:func:`build_view_transform` makes the views of a method's recipe with kornia.
"""

from lt_data._dataset import ImageDataset, collate_images
from lt_data._decode import decode_image
from lt_data._files import IMAGE_EXTENSIONS, list_image_files
from lt_data._views import build_view_transform

__version__ = "0.1.0"

__all__ = [
    "IMAGE_EXTENSIONS",
    "ImageDataset",
    "build_view_transform",
    "collate_images",
    "decode_image",
    "list_image_files",
]
