"""Versioned Elasticsearch index templates of the post store (``posts.v<N>.json``).

A file is never edited once released: a mapping change is a new version
(``posts.v2.json``) and ``yuqing index rebuild`` moves the data over.
"""
