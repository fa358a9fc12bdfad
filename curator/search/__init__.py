"""Search and the map: per-space FAISS indexes kept in step by the write path, queried warm.

`index_files` owns the index files and their only writer (`sync_index`); `cache` keeps opened
indexes and query models per project; `queries` turns a text, an item or a file into query
vectors; `engine` searches and merges them into `SearchHit`s; `maps` owns the 2-D map.
"""

from curator.search.cache import SearchCache
from curator.search.engine import SearchHit, search
from curator.search.index_files import sync_index
from curator.search.maps import MAPS_DIR, compute_maps, load_map
from curator.search.queries import make_embedder

__all__ = ["MAPS_DIR", "SearchCache", "SearchHit", "compute_maps", "load_map", "make_embedder",
           "search", "sync_index"]
