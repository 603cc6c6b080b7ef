"""Scrapy settings of the yuqing crawler.

:func:`crawler.runner.scrapy_settings` loads this module and then overrides
the politeness values from ``core.settings.CrawlConfig`` (the ``crawl:``
section of the config file), so this file holds the production defaults.
"""

BOT_NAME = "yuqing"
SPIDER_MODULES = ["crawler.spiders"]
NEWSPIDER_MODULE = "crawler.spiders"

# Identify ourselves and honour robots.txt: we monitor public pages politely.
USER_AGENT = "yuqing-monitor/0.1 (+reputational-risk monitoring; contact: it-ops@example.com)"
ROBOTSTXT_OBEY = True

# Politeness: adapt to the site's latency, few parallel requests per site.
AUTOTHROTTLE_ENABLED = True
AUTOTHROTTLE_START_DELAY = 1.0
AUTOTHROTTLE_MAX_DELAY = 30.0
AUTOTHROTTLE_TARGET_CONCURRENCY = 1.0
DOWNLOAD_DELAY = 0.5
CONCURRENT_REQUESTS = 16
CONCURRENT_REQUESTS_PER_DOMAIN = 2
DOWNLOAD_TIMEOUT = 30
# A news page is < 1 MB; anything over 16 MB is a file or an error page, not an
# article: it is cancelled (counted in yuqing/errors/too_large), and Scrapy logs
# a warning for anything over 4 MB.
DOWNLOAD_MAXSIZE = 16 * 1024 * 1024
DOWNLOAD_WARNSIZE = 4 * 1024 * 1024

# Retries with exponential backoff (crawler.middlewares.BackoffRetryMiddleware).
RETRY_ENABLED = True
RETRY_TIMES = 3
RETRY_HTTP_CODES = [500, 502, 503, 504, 522, 524, 408, 429]
RETRY_BACKOFF_BASE = 1.0
RETRY_BACKOFF_MAX = 30.0
# Item pages of posts already stored are not requested again (crawler.incremental).
SPIDER_MIDDLEWARES = {"crawler.incremental.SeenItemsMiddleware": 900}
YUQING_INCREMENTAL = True
DOWNLOADER_MIDDLEWARES = {
    "scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
    "crawler.middlewares.BackoffRetryMiddleware": 550,
    # Below HttpCompressionMiddleware (590), so it sees the decompressed body.
    "crawler.middlewares.CharsetMiddleware": 580,
    # Cookies from a source's cookies_env, to its own hosts only.
    "crawler.middlewares.SourceCookiesMiddleware": 560,
}

# A monitor re-reads the same pages every few minutes: never serve them from a cache.
HTTPCACHE_ENABLED = False
COOKIES_ENABLED = False
# No remote consoles in a monitoring service: Scrapy's telnet console and its
# remote-control HTTP server (enabled by default since 2.19; it runs Python code
# sent to it) would open ports in every crawl process.
TELNETCONSOLE_ENABLED = False
REMOTE_CONTROL_ENABLED = False
FEED_EXPORT_ENCODING = "utf-8"
LOG_LEVEL = "INFO"
# The runner logs a one-line summary (and the full stats at DEBUG) instead of
# Scrapy's 40-line dump after every crawl.
STATS_DUMP = False

# validate → clean → mention filter → dedup → analyze → store (STYLE #5).
ITEM_PIPELINES = {
    "crawler.pipelines.ValidatePipeline": 100,
    "crawler.pipelines.CleanPipeline": 200,
    "crawler.pipelines.MentionFilterPipeline": 300,
    "crawler.pipelines.DedupPipeline": 400,
    "crawler.pipelines.AnalyzePipeline": 500,
    "crawler.pipelines.StorePipeline": 600,
}

# Our own settings (the runner sets YUQING_SERVICES and the source's time zone).
YUQING_TIMEZONE = "Asia/Shanghai"
YUQING_STORE_BATCH_SIZE = 50
YUQING_MENTION_FILTER_ENABLED = True
YUQING_DEDUP_ENABLED = True
YUQING_ANALYZE_ENABLED = True
