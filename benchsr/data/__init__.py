"""Volumes and patches: reading, windowing and degrading CT (volumes), the on-disk slice cache
(cache), patch sampling (patches), the embedded chest CT (embedded), and the through-plane
track's thick slices and their geometry (through_plane). Dataset plugins import
from here: `from benchsr.data import read_volume, window, degrade, cached`, and `sitk`, SimpleITK
imported when first used (benchsr/optional.py)."""
from benchsr.data.cache import StackedSlices, cached
from benchsr.data.embedded import (CREDIT, DISTRIBUTION, PATIENT, PATIENTS, chest_ct_folder,
                                   data_home)
from benchsr.data.volumes import (body_mask, check_hu, check_hu_range, degrade, enlarge_bicubic,
                                  read_volume, resample, sitk, stream_distance, window)
from benchsr.data.prepared import (PREPARED, PREPARED_SUFFIX, field_of_view, prepared_names, read_scan, source_of,
                                   write_scan)
from benchsr.data.scans import Scan, find_scans, safe_name
from benchsr.data.through_plane import (Z_DEGRADATIONS, eval_slab, interpolate_z,
                                        mean_over_extents, missing, physical_pair, slab_geometry,
                                        thicken, thin_positions)
