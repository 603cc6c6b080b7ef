import pytest

from core.ids import canonical_url, content_hash, post_id_from_platform, post_id_from_url


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("HTTP://News.Example.COM:80/a/b/?x=1#frag", "http://news.example.com/a/b?x=1"),
        ("https://example.com:443/", "https://example.com/"),
        ("https://example.com:8443/p", "https://example.com:8443/p"),
        ("https://example.com/p?utm_source=wx&b=2&a=1&spm=abc", "https://example.com/p?a=1&b=2"),
        ("https://example.com", "https://example.com/"),
        ("  https://example.com/t/1.html  ", "https://example.com/t/1.html"),
    ],
)
def test_canonical_url(raw: str, expected: str) -> None:
    assert canonical_url(raw) == expected


@pytest.mark.parametrize(
    "bad", ["", "ftp://x.com/a", "/relative/path", "javascript:alert(1)", "http://"]
)
def test_canonical_url_rejects_non_http(bad: str) -> None:
    with pytest.raises(ValueError, match="absolute http"):
        canonical_url(bad)


def test_same_page_same_id_whatever_the_tracking() -> None:
    a = post_id_from_url("https://bbs.example.com/thread/9?utm_campaign=x#reply-3")
    b = post_id_from_url("https://BBS.example.com/thread/9/")
    c = post_id_from_url("https://bbs.example.com/thread/10")
    assert a == b
    assert a != c
    assert len(a) == 24 and int(a, 16) >= 0


def test_platform_ids_are_namespaced() -> None:
    assert post_id_from_platform("weibo", "123") != post_id_from_platform("tieba", "123")
    assert post_id_from_platform("Weibo", " 123 ") == post_id_from_platform("weibo", "123")
    with pytest.raises(ValueError):
        post_id_from_platform("weibo", "")


def test_content_hash_ignores_whitespace_only() -> None:
    assert content_hash("澜海银行  理财\n亏损") == content_hash("澜海银行 理财 亏损")
    assert content_hash("澜海银行理财亏损") != content_hash("澜海银行理财盈利")
