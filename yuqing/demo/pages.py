"""HTML, RSS and CSV rendering for the demo web.

The pages look like the sites they imitate — navigation, a "相关推荐"
sidebar, footers, share bars, a disclaimer inside the article body — so the
crawler's selectors and the text cleaning are exercised as on a real site.
Every scenario string is HTML-escaped. Times are shown in the scenario's
local zone; RSS dates are RFC 822.
"""

# HTML templates read best with one element per line, however long.
# ruff: noqa: E501

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import datetime
from email.utils import format_datetime
from html import escape
from xml.sax.saxutils import escape as xml_escape
from zoneinfo import ZoneInfo

from yuqing.demo.scenario import DemoPost, DemoTicket

FORUM_NAME = "滨江社区"
NEWS_NAME = "江南财经网"
COMPLAINT_NAME = "聚诉网"

# Replies shown under a forum thread; the crawler must ignore them (text = first post only).
_REPLIES = [
    "同问，坐等后续。",
    "顶一下，希望有关部门关注。",
    "楼主说的情况我也遇到过。",
    "mark，回头看看。",
    "理性讨论，别带节奏。",
    "已私信楼主。",
]

TICKET_FIELDS = [
    "ticket_id",
    "created_at",
    "channel",
    "branch",
    "product",
    "category",
    "priority",
    "status",
    "summary",
    "customer_ref",
]


def fmt_minute(dt: datetime, zone: ZoneInfo) -> str:
    """``2026-11-23 14:05`` in ``zone``."""
    return dt.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def fmt_second(dt: datetime, zone: ZoneInfo) -> str:
    """``2026-11-23 14:05:09`` in ``zone``."""
    return dt.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


def fmt_zh(dt: datetime, zone: ZoneInfo) -> str:
    """``2026年11月23日 14:05`` in ``zone`` (the style of Chinese news sites)."""
    local = dt.astimezone(zone)
    return f"{local.year}年{local.month:02d}月{local.day:02d}日 {local:%H:%M}"


def fmt_count(n: int) -> str:
    """``12345`` → ``1.2万``, as Chinese sites show follower counts."""
    if n >= 10000:
        return f"{n / 10000:.1f}万"
    return str(n)


def _paragraphs(text: str) -> str:
    return "\n".join(f"      <p>{escape(line)}</p>" for line in text.splitlines() if line.strip())


def _page(title: str, site_class: str, header: str, main: str, aside: str, footer: str) -> str:
    return f"""<!DOCTYPE html>
<html lang="zh-CN">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>{escape(title)}</title>
  <style>
    body {{ font-family: "PingFang SC", "Microsoft YaHei", sans-serif; margin: 0; color: #222; }}
    header, footer {{ background: #f4f4f4; padding: 8px 16px; }}
    .wrap {{ display: flex; gap: 24px; padding: 16px; }}
    main {{ flex: 3; }} aside {{ flex: 1; border-left: 1px solid #ddd; padding-left: 16px; }}
    nav a {{ margin-right: 12px; }}
  </style>
</head>
<body class="{site_class}">
{header}
<div class="wrap">
<main>
{main}
</main>
<aside class="sidebar">
{aside}
</aside>
</div>
{footer}
</body>
</html>
"""


def _sidebar(title: str, links: Sequence[tuple[str, str]]) -> str:
    items = "\n".join(f'    <li><a href="{escape(u)}">{escape(t)}</a></li>' for u, t in links)
    return f"""  <div class="recommend">
  <h3>{escape(title)}</h3>
  <ul>
{items}
  </ul>
  </div>
  <div class="ad">广告 · 限时优惠 · 点击了解</div>"""


def _pager(base: str, page: int, pages: int) -> str:
    parts = ['<div class="pager">']
    if page > 1:
        parts.append(f'  <a class="prev" href="{base}?page={page - 1}">上一页</a>')
    parts.append(f'  <span class="current">第 {page} / {max(pages, 1)} 页</span>')
    if page < pages:
        parts.append(f'  <a class="next" href="{base}?page={page + 1}">下一页</a>')
    parts.append("</div>")
    return "\n".join(parts)


# -- forum ----------------------------------------------------------------------

_FORUM_HEADER = f"""<header class="site-header">
  <a class="logo" href="/forum/">{FORUM_NAME}</a>
  <nav class="main-nav"><a href="/index.html">首页</a><a href="/forum/">理财交流</a>
  <a href="/forum/?page=1">最新帖子</a><a href="/admin/">版主管理</a></nav>
  <div class="login"><a href="/forum/login">登录</a> | <a href="/forum/register">注册</a></div>
</header>"""

_FORUM_FOOTER = f"""<footer class="site-footer">
  <p>© 2026 {FORUM_NAME} 版权所有 · 浙ICP备00000000号-1</p>
  <p>本站帖子仅代表作者本人观点 · <a href="/forum/about">关于我们</a> · <a href="/forum/contact">联系方式</a></p>
</footer>"""


def forum_list(
    posts: Sequence[DemoPost],
    page: int,
    pages: int,
    zone: ZoneInfo,
    when: dict[int, datetime],
    hot: Sequence[DemoPost],
) -> str:
    rows = []
    for p in posts:
        rows.append(
            f"""  <li class="thread">
    <a class="thread-title" href="/forum/thread/{p.id}.html">{escape(p.title)}</a>
    <span class="thread-author">{escape(p.author)}</span>
    <span class="thread-replies">回复 {p.comments}</span>
    <span class="thread-time">{fmt_minute(when[p.id], zone)}</span>
  </li>"""
        )
    main = f"""<h1 class="board-title">理财交流版</h1>
<ul class="thread-list">
{chr(10).join(rows) or '  <li class="empty">暂无帖子</li>'}
</ul>
{_pager("/forum/", page, pages)}"""
    aside = _sidebar("相关推荐", [(f"/forum/thread/{p.id}.html", p.title) for p in hot])
    return _page(
        f"理财交流版 - 第{page}页 - {FORUM_NAME}",
        "forum",
        _FORUM_HEADER,
        main,
        aside,
        _FORUM_FOOTER,
    )


def forum_thread(post: DemoPost, zone: ZoneInfo, when: datetime, hot: Sequence[DemoPost]) -> str:
    # A user who hides the count shows "--", as real forums do (not a missing element).
    fans_count = "--" if post.followers is None else fmt_count(post.followers)
    fans = f'<span class="author-fans">粉丝 {fans_count}</span>'
    replies = []
    for k in range(min(post.comments, 3)):
        text = _REPLIES[(post.id + k) % len(_REPLIES)]
        replies.append(
            f"""  <div class="post reply" id="post-{k + 2}">
    <div class="post-author"><a class="author-name">网友{(post.id * 7 + k) % 9000 + 1000}</a></div>
    <div class="post-content"><p>{escape(text)}</p></div>
  </div>"""
        )
    main = f"""<div class="breadcrumb"><a href="/forum/">{FORUM_NAME}</a> &gt; <a href="/forum/">理财交流</a> &gt; 正文</div>
<article class="thread">
  <h1 class="thread-title">{escape(post.title)}</h1>
  <div class="thread-stats">查看 <span class="views">{post.comments * 37 + post.likes * 5 + 80}</span>
    | 回复 <span class="reply-count">{post.comments}</span>
    | 转发 <span class="repost-count">{post.reposts}</span>
    | 点赞 <span class="like-count">{post.likes}</span></div>
  <div class="post first" id="post-1">
    <div class="post-author"><a class="author-name">{escape(post.author)}</a> {fans}</div>
    <div class="post-time">发表于 {fmt_minute(when, zone)}</div>
    <div class="post-content">
{_paragraphs(post.text)}
    </div>
    <div class="post-sign">——发自{FORUM_NAME}客户端</div>
    <div class="share">分享到： 微信 · 微博 · QQ空间</div>
  </div>
{chr(10).join(replies)}
</article>"""
    aside = _sidebar("相关推荐", [(f"/forum/thread/{p.id}.html", p.title) for p in hot])
    return _page(f"{post.title} - {FORUM_NAME}", "forum", _FORUM_HEADER, main, aside, _FORUM_FOOTER)


# -- news -----------------------------------------------------------------------

_NEWS_HEADER = f"""<header class="site-header">
  <a class="logo" href="/news/">{NEWS_NAME}</a>
  <nav class="main-nav"><a href="/index.html">首页</a><a href="/news/">金融</a><a href="/news/">银行</a>
  <a href="/news/">理财</a><a href="/news/rss.xml">RSS订阅</a></nav>
</header>"""

_NEWS_FOOTER = f"""<footer class="site-footer">
  <p>Copyright © 2026 {NEWS_NAME} All Rights Reserved.</p>
  <p>未经授权禁止转载 · 违法和不良信息举报电话：000-00000000</p>
</footer>"""


def news_list(
    posts: Sequence[DemoPost],
    page: int,
    pages: int,
    zone: ZoneInfo,
    when: dict[int, datetime],
    hot: Sequence[DemoPost],
) -> str:
    rows = []
    for p in posts:
        summary = p.text.splitlines()[0][:80]
        rows.append(
            f"""  <li class="news-item">
    <a class="news-title" href="/news/{p.id}.html">{escape(p.title)}</a>
    <span class="news-time">{fmt_minute(when[p.id], zone)}</span>
    <p class="news-summary">{escape(summary)}</p>
  </li>"""
        )
    main = f"""<h1 class="channel-title">银行频道</h1>
<ul class="news-list">
{chr(10).join(rows) or '  <li class="empty">暂无新闻</li>'}
</ul>
{_pager("/news/", page, pages)}"""
    aside = _sidebar("热门文章", [(f"/news/{p.id}.html", p.title) for p in hot])
    return _page(f"银行频道 - {NEWS_NAME}", "news", _NEWS_HEADER, main, aside, _NEWS_FOOTER)


def news_article(post: DemoPost, zone: ZoneInfo, when: datetime, hot: Sequence[DemoPost]) -> str:
    publisher = post.publisher or NEWS_NAME
    main = f"""<div class="breadcrumb"><a href="/news/">{NEWS_NAME}</a> &gt; 银行 &gt; 正文</div>
<article class="article">
  <h1 class="article-title">{escape(post.title)}</h1>
  <div class="article-meta">
    <span class="article-source">来源：{escape(publisher)}</span>
    <span class="article-author">作者：<span class="name">{escape(post.author)}</span></span>
    <span class="article-time">{fmt_zh(when, zone)}</span>
  </div>
  <div class="article-content">
{_paragraphs(post.text)}
      <p>扫码关注{NEWS_NAME}公众号，获取更多财经资讯。</p>
      <p>免责声明：本文仅代表作者个人观点，不构成任何投资建议。</p>
  </div>
  <div class="article-editor">（责任编辑：王编辑）</div>
  <div class="article-stats">阅读 <span class="read-count">{post.likes * 20 + 300}</span>
    评论 <span class="comment-count">{post.comments}</span>
    转发 <span class="repost-count">{post.reposts}</span>
    点赞 <span class="like-count">{post.likes}</span></div>
  <div class="share">分享到： 微信 · 微博</div>
</article>"""
    aside = _sidebar("相关推荐", [(f"/news/{p.id}.html", p.title) for p in hot])
    return _page(f"{post.title}_{NEWS_NAME}", "news", _NEWS_HEADER, main, aside, _NEWS_FOOTER)


def news_rss(
    posts: Sequence[DemoPost],
    base_url: str,
    when: dict[int, datetime],
    zone: ZoneInfo,
    built: datetime,
) -> str:
    """RSS 2.0 of ``posts`` (newest first); dates RFC 822 in local time (+0800)."""
    items = []
    for p in posts:
        link = f"{base_url}/news/{p.id}.html"
        summary = p.text.splitlines()[0][:120]
        items.append(
            f"""    <item>
      <title>{xml_escape(p.title)}</title>
      <link>{xml_escape(link)}</link>
      <guid isPermaLink="true">{xml_escape(link)}</guid>
      <description>{xml_escape(summary)}</description>
      <dc:creator>{xml_escape(p.author)}</dc:creator>
      <pubDate>{format_datetime(when[p.id].astimezone(zone))}</pubDate>
    </item>"""
        )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/">
  <channel>
    <title>{NEWS_NAME} · 银行频道</title>
    <link>{xml_escape(base_url)}/news/</link>
    <description>银行、理财与金融监管新闻</description>
    <language>zh-cn</language>
    <lastBuildDate>{format_datetime(built.astimezone(zone))}</lastBuildDate>
{chr(10).join(items)}
  </channel>
</rss>
"""


# -- complaints -------------------------------------------------------------------

_COMPLAINT_HEADER = f"""<header class="site-header">
  <a class="logo" href="/complaints/">{COMPLAINT_NAME}</a>
  <nav class="main-nav"><a href="/index.html">首页</a><a href="/complaints/">最新投诉</a>
  <a href="/complaints/">集体投诉</a><a href="/complaints/">已完成</a><a href="/admin/">商家后台</a></nav>
  <a class="cta" href="/complaints/new">我要投诉</a>
</header>"""

_COMPLAINT_FOOTER = f"""<footer class="site-footer">
  <p>© 2026 {COMPLAINT_NAME} 版权所有 · 消费者权益服务平台</p>
  <p>平台不对投诉内容的真实性负责 · 客服邮箱 service@example.com</p>
</footer>"""


def complaint_list(
    posts: Sequence[DemoPost],
    page: int,
    pages: int,
    zone: ZoneInfo,
    when: dict[int, datetime],
    hot: Sequence[DemoPost],
) -> str:
    rows = []
    for p in posts:
        assert p.complaint is not None  # guaranteed by the scenario validators
        rows.append(
            f"""  <div class="complaint-card">
    <a class="complaint-title" href="/complaints/{p.id}.html">{escape(p.title)}</a>
    <span class="c-target">投诉对象：{escape(p.complaint.target)}</span>
    <span class="c-status">{escape(p.complaint.status)}</span>
    <span class="c-time">{fmt_minute(when[p.id], zone)}</span>
  </div>"""
        )
    main = f"""<h1 class="list-title">最新投诉</h1>
<div class="complaint-list">
{chr(10).join(rows) or '  <div class="empty">暂无投诉</div>'}
</div>
{_pager("/complaints/", page, pages)}"""
    aside = _sidebar("热门投诉", [(f"/complaints/{p.id}.html", p.title) for p in hot])
    return _page(
        f"最新投诉 - {COMPLAINT_NAME}",
        "complaint",
        _COMPLAINT_HEADER,
        main,
        aside,
        _COMPLAINT_FOOTER,
    )


def complaint_detail(
    post: DemoPost, zone: ZoneInfo, when: datetime, hot: Sequence[DemoPost]
) -> str:
    c = post.complaint
    assert c is not None  # guaranteed by the scenario validators
    amount = (
        f'\n    <li class="amount"><span class="label">涉诉金额：</span>'
        f'<span class="value">{escape(c.amount)}</span></li>'
        if c.amount
        else ""
    )
    main = f"""<div class="breadcrumb"><a href="/complaints/">{COMPLAINT_NAME}</a> &gt; 投诉详情</div>
<div class="complaint">
  <h1 class="complaint-title">{escape(post.title)}</h1>
  <ul class="complaint-info">
    <li class="number"><span class="label">投诉编号：</span><span class="value">{post.id}</span></li>
    <li class="target"><span class="label">投诉对象：</span><span class="value">{escape(c.target)}</span></li>
    <li class="problem"><span class="label">投诉问题：</span><span class="value">{escape(c.problem)}</span></li>
    <li class="demand"><span class="label">投诉要求：</span><span class="value">{escape(c.demand)}</span></li>{amount}
    <li class="status"><span class="label">状态：</span><span class="value">{escape(c.status)}</span></li>
    <li class="collective"><span class="label">集体投诉人数：</span><span class="value">{c.collective_count}</span></li>
  </ul>
  <div class="complaint-body">
{_paragraphs(post.text)}
  </div>
  <div class="complaint-meta">
    <span class="complaint-user">投诉人：<span class="name">{escape(post.author)}</span></span>
    <span class="complaint-time">发布时间：{fmt_second(when, zone)}</span>
  </div>
  <div class="complaint-stats">评论 <span class="comment-count">{post.comments}</span>
    点赞 <span class="like-count">{post.likes}</span></div>
  <div class="progress"><h3>处理进度</h3><p>平台已将投诉转交商家，等待商家回复。</p></div>
</div>"""
    aside = _sidebar("相关推荐", [(f"/complaints/{p.id}.html", p.title) for p in hot])
    return _page(
        f"{post.title} - {COMPLAINT_NAME}",
        "complaint",
        _COMPLAINT_HEADER,
        main,
        aside,
        _COMPLAINT_FOOTER,
    )


# -- misc -------------------------------------------------------------------------


def index_page(base_url: str) -> str:
    main = f"""<h1>澜海银行 · 舆情演示网络</h1>
<p>本地演示站点，内容均为虚构。</p>
<ul class="sites">
  <li><a href="/forum/">{FORUM_NAME}（论坛）</a></li>
  <li><a href="/news/">{NEWS_NAME}（新闻）</a> · <a href="/news/rss.xml">RSS</a></li>
  <li><a href="/complaints/">{COMPLAINT_NAME}（投诉平台）</a></li>
  <li><a href="/tickets.csv">投诉工单导出（CSV）</a></li>
</ul>
<p class="base">{escape(base_url)}</p>"""
    header = '<header class="site-header"><a class="logo" href="/index.html">演示网络</a></header>'
    footer = '<footer class="site-footer"><p>© 2026 演示站点 · 仅供测试</p></footer>'
    return _page("舆情演示网络", "index", header, main, "", footer)


def robots_txt() -> str:
    return (
        "# demo web robots.txt\n"
        "User-agent: *\n"
        "Disallow: /admin/\n"
        "Disallow: /forum/login\n"
        "Disallow: /complaints/new\n"
        "Allow: /\n"
    )


def not_found_page(what: str) -> str:
    header = '<header class="site-header"><a class="logo" href="/index.html">演示网络</a></header>'
    footer = '<footer class="site-footer"><p>© 2026 演示站点</p></footer>'
    return _page(
        "404 页面不存在", "error", header, f"<h1>404</h1><p>{escape(what)}</p>", "", footer
    )


def tickets_csv(tickets: Sequence[DemoTicket], when: dict[str, datetime], zone: ZoneInfo) -> str:
    """The complaint-ticket export: one header row, ``created_at`` ISO 8601 with +08:00."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(TICKET_FIELDS)
    for t in tickets:
        created = when[t.ticket_id].astimezone(zone).replace(microsecond=0).isoformat()
        writer.writerow(
            [
                t.ticket_id,
                created,
                t.channel,
                t.branch,
                t.product,
                t.category,
                t.priority,
                t.status,
                t.summary,
                t.customer_ref,
            ]
        )
    return buf.getvalue()
