"""libvips' tile height, lowered in the decoders so that a wide image costs less memory.

Every decode pixdrop makes reads its image sequentially, and libvips then keeps a line cache
in front of the loader of ``4 * n_lines`` rows, where ``n_lines`` follows libvips' tile height
(128 rows by default; ``vips_get_tile_size`` and ``vips_line_cache_build`` in libvips). On a
wide image that is a lot: a TIFF 8,191 pixels wide with four 32-bit samples has rows of 128
KiB, so the cache holds 64 MiB, most of what decoding it costs. At a tile height of 32 rows it
holds a quarter of that.

libvips has no function or environment variable for the tile height, only a command-line
option (``--vips-tile-height``, marked for debugging), so :func:`set_tile_height` hands that
option to GLib's option parser with the entries libvips publishes for it
(``vips_add_option_entries``, public API). Where that is not possible (another libvips
build, no GLib symbols), nothing changes and the caller is told.

Measured (``jobs.inspect`` in-process, two runs each): the 1 GiB TIFF above peaked 103 MiB
above the process's resting size at the default and 56 MiB at 32 rows, and took 0.52 -> 0.40 s;
100 KiB photos (3.3-3.5 ms) and 1,600-pixel variants of the sample photos (37-39 ms) did not
move. The cache still grows with libvips' thread count (``n_lines`` is at least 16 rows per
thread), so on a machine with many cores the saving is smaller.
"""

from __future__ import annotations

import ctypes
from ctypes import POINTER, byref, c_char_p, c_int, c_void_p
from typing import Any, Final

import pyvips  # type: ignore[import-untyped]

#: Rows; a multiple of 16 (libvips' strip height), as libvips assumes.
TILE_HEIGHT: Final = 32


def _libvips() -> ctypes.CDLL | None:
    """The libvips that pyvips loaded, opened again for symbols pyvips does not wrap."""
    try:
        if pyvips.API_mode:
            import _libvips  # type: ignore[import-not-found]  # pyvips' compiled binding

            # dlsym through the binding's handle also searches the libraries it links.
            return ctypes.CDLL(_libvips.__file__)
        return ctypes.CDLL(pyvips.library_name("vips", 42))
    except (ImportError, OSError):
        return None


def _bind(function: Any, restype: Any, *argtypes: Any) -> Any:
    function.argtypes, function.restype = list(argtypes), restype
    return function


def set_tile_height(rows: int = TILE_HEIGHT) -> bool:
    """Set libvips' tile height for this process (before any image is opened); whether it
    was set."""
    lib = _libvips()
    if lib is None:
        return False
    try:
        new_context = _bind(lib.g_option_context_new, c_void_p, c_char_p)
        new_group = _bind(lib.g_option_group_new, c_void_p, *[c_char_p] * 3, c_void_p, c_void_p)
        set_main_group = _bind(lib.g_option_context_set_main_group, None, c_void_p, c_void_p)
        add_entries = _bind(lib.vips_add_option_entries, None, c_void_p)
        parse = _bind(
            lib.g_option_context_parse,
            c_int,
            *[c_void_p, POINTER(c_int), POINTER(POINTER(c_char_p)), POINTER(c_void_p)],
        )
        free_context = _bind(lib.g_option_context_free, None, c_void_p)
        free_error = _bind(lib.g_error_free, None, c_void_p)
    except AttributeError:  # a build that does not export them
        return False

    context = new_context(None)
    group = new_group(b"vips", b"libvips", b"libvips", None, None)
    set_main_group(context, group)  # the context owns the group from here
    add_entries(group)
    words = [b"pixdrop", f"--vips-tile-height={rows}".encode()]
    argv = (c_char_p * (len(words) + 1))(*words, None)
    argc = c_int(len(words))
    argv_pointer = ctypes.cast(argv, POINTER(c_char_p))
    error = c_void_p()
    try:
        parsed = parse(context, byref(argc), byref(argv_pointer), byref(error))
    finally:
        if error.value:
            free_error(error)
        free_context(context)
    return bool(parsed) and argc.value == 1  # the option was known and taken
