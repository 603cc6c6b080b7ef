"""The Scrapy crawler: spiders extract; pipelines validate, clean, filter, dedup, analyze, store.

Entry point: :func:`crawler.runner.run_crawl` (one source, one process).
"""
