"""Examples from Cloudflare's Rules language documentation, with the results it documents.

Examples on fields hagate does not have (request bodies) are adapted to a header carrying the
same value; the expression's shape and the expected result are Cloudflare's.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.rules.helpers import evaluate

H = "http.request.headers"

CASES: list[tuple[str, dict[str, Any], bool]] = [
    # Operators page
    (
        'http.request.uri.path eq "/articles/2008/"',
        {"http.request.uri.path": "/articles/2008/"},
        True,
    ),
    ("ip.src ne 203.0.113.0", {"ip.src": "203.0.113.1"}, True),
    ("ip.src ne 203.0.113.0", {"ip.src": "203.0.113.0"}, False),
    (
        'http.request.uri.path contains "/articles/"',
        {"http.request.uri.path": "/x/articles/1"},
        True,
    ),
    (
        'http.request.uri.path wildcard "/articles/*"',
        {"http.request.uri.path": "/ARTICLES/a"},
        True,
    ),
    (
        'http.request.uri.path strict wildcard "/AdminTeam/*"',
        {"http.request.uri.path": "/adminteam/x"},
        False,
    ),
    (
        'http.request.uri.path strict wildcard "/AdminTeam/*"',
        {"http.request.uri.path": "/AdminTeam/x"},
        True,
    ),
    (
        'http.request.uri.path matches "^/articles/200[7-8]/$"',
        {"http.request.uri.path": "/articles/2008/"},
        True,
    ),
    (
        'http.request.uri.path matches "^/articles/200[7-8]/$"',
        {"http.request.uri.path": "/articles/2009/"},
        False,
    ),
    ("ip.src in { 203.0.113.0 203.0.113.1 }", {"ip.src": "203.0.113.1"}, True),
    # Wildcard example A
    *[
        (
            'http.request.full_uri wildcard "https://example.com/a/*"',
            {"http.request.full_uri": u},
            True,
        )
        for u in [
            "https://example.com/a/",
            "https://example.com/a/page.html",
            "https://example.com/a/sub/folder/?name=value",
        ]
    ],
    *[
        (
            'http.request.full_uri wildcard "https://example.com/a/*"',
            {"http.request.full_uri": u},
            False,
        )
        for u in [
            "https://example.com/ab/",
            "https://example.com/b/page.html",
            "https://sub.example.com/a/",
        ]
    ],
    # Wildcard example B
    *[
        (
            'http.request.full_uri wildcard "*.example.com/*/page.html"',
            {"http.request.full_uri": u},
            True,
        )
        for u in [
            "http://sub.example.com/folder/page.html",
            "https://admin.example.com/team/page.html",
            "https://admin.example.com/team/subteam/page.html",
        ]
    ],
    *[
        (
            'http.request.full_uri wildcard "*.example.com/*/page.html"',
            {"http.request.full_uri": u},
            False,
        )
        for u in [
            "https://example.com/ab/page.html",
            "https://sub.example.com/folder2/page.html?s=value",
            "https://sub.example.com/a/",
        ]
    ],
    # Nested expression from the grouping section
    (
        '(\n (http.host eq "api.example.com" and http.request.uri.path eq "/api/v2/auth") or\n'
        ' (http.host matches "^(www|store|blog)\\.example\\.com" and http.request.uri.path contains "wp-login.php") or\n'
        ' ip.geoip.country in {"CN" "TH" "US" "ID" "KR" "MY" "IT" "SG" "GB"} or ip.geoip.asnum in {12345 54321 11111}\n'
        ") and not ip.src in {11.22.33.0/24}",
        {
            "http.host": "blog.example.com",
            "http.request.uri.path": "/wp-login.php",
            "ip.src": "198.51.100.1",
        },
        True,
    ),
    (
        "(ip.geoip.asnum in {12345 54321 11111}) and not ip.src in {11.22.33.0/24}",
        {"ip.src.asnum": 54321, "ip.src": "11.22.33.4"},
        False,
    ),
    # Fields and expressions
    (
        'http.host eq "www.example.com" and not cf.edge.server_port in {80 443}',
        {"http.host": "www.example.com", "cf.edge.server_port": 8443},
        True,
    ),
    (
        'http.request.uri.path matches "/autodiscover\\.(xml|src)$"',
        {"http.request.uri.path": "/autodiscover/autodiscover.xml"},
        True,
    ),
    # Values page: booleans, arrays, maps, inline lists, raw strings
    ("ssl", {"ssl": True}, True),
    ("not ssl", {"ssl": True}, False),
    (f'{H}.names[0] == "Content-Type"', {f"{H}.names": ["Content-Type", "Accept"]}, True),
    (f'any({H}.names[*] == "Content-Type")', {f"{H}.names": ["Accept", "Content-Type"]}, True),
    (f'any({H}.names[*] == "Content-Type")', {f"{H}.names": ["Accept", "content-type"]}, False),
    (
        f'any(lower({H}.names[*])[*] == "content-type")',
        {f"{H}.names": ["Accept", "CONTENT-type"]},
        True,
    ),
    (f'any({H}["accept"][*] == "application/json")', {H: {"accept": ["application/json"]}}, True),
    (f'any({H}["accept"][*] == "text/plain")', {H: {"accept": ["application/json"]}}, False),
    (
        'len(http.request.uri.args["filter"][1]) == 4',
        {"http.request.uri.args": {"filter": ["waf", "botm", "cdn"]}},
        True,
    ),
    (
        'all(len(http.request.uri.args["filter"][*])[*] in {3 4})',
        {"http.request.uri.args": {"filter": ["waf", "botm", "cdn"]}},
        True,
    ),
    (
        'all(not len(http.request.uri.args["filter"][*])[*] in {3 4})',
        {"http.request.uri.args": {"filter": ["waf", "botm", "cdn"]}},
        False,
    ),
    (
        'len(http.request.uri.args["filter"]) >= 0',
        {"http.request.uri.args": {"filter": ["waf", "botm", "cdn"]}},
        True,
    ),
    (
        'not len(http.request.uri.args["order"]) >= 0',
        {"http.request.uri.args": {"filter": ["waf", "botm", "cdn"]}},
        True,
    ),
    ('http.host in {"example.com" "example.net"}', {"http.host": "example.net"}, True),
    (
        "ip.src in {198.51.100.1 198.51.100.3..198.51.100.7 192.0.2.0/24 2001:0db8::/32}",
        {"ip.src": "198.51.100.5"},
        True,
    ),
    (
        "ip.src in {198.51.100.1 198.51.100.3..198.51.100.7 192.0.2.0/24 2001:0db8::/32}",
        {"ip.src": "198.51.100.2"},
        False,
    ),
    (
        "ip.src in {198.51.100.1 198.51.100.3..198.51.100.7 192.0.2.0/24 2001:0db8::/32}",
        {"ip.src": "2001:db8::42"},
        True,
    ),
    ("cf.edge.server_port in {8000..8009 8080..8089}", {"cf.edge.server_port": 8085}, True),
    ("cf.edge.server_port in {8000..8009 8080..8089}", {"cf.edge.server_port": 8010}, False),
    ('http.request.uri.path matches "a\\"b"', {"http.request.uri.path": '/xa"b'}, True),
    ('http.request.uri.path matches "a\\"#b"', {"http.request.uri.path": '/a"#b'}, True),
    ('http.request.uri.path matches r#"a"b"#', {"http.request.uri.path": '/a"b/'}, True),
    ('http.request.uri.path matches r##"a"#b"##', {"http.request.uri.path": 'a"#b'}, True),
    (
        'http.request.uri.path matches r"/api/login\\.aspx$"',
        {"http.request.uri.path": "/api/login.aspx"},
        True,
    ),
    (
        'http.request.uri.path matches r"/api/login\\.aspx$"',
        {"http.request.uri.path": "/api/loginxaspx"},
        False,
    ),
    # Functions page
    ('lower(http.host) == "www.cloudflare.com"', {"http.host": "WWW.cloudflare.com"}, True),
    (
        f'all({H}["content-type"][*] == "application/json")',
        {H: {"content-type": ["application/json"]}},
        True,
    ),
    ("cidr(ip.src, 24, 24) == 113.10.0.0", {"ip.src": "113.10.0.2"}, True),
    ("cidr(ip.src, 24, 24) == 2001::", {"ip.src": "2001:0000:130F:0000:0000:09C0:876A:130B"}, True),
    ("cidr6(ip.src, 24) == 2001::", {"ip.src": "2001:0000:130F:0000:0000:09C0:876A:130B"}, True),
    ("cidr6(ip.src, 24) == 113.10.0.2", {"ip.src": "113.10.0.2"}, True),
    ('concat("String1", " ", "String", "2") == "String1 String2"', {}, True),
    (
        'concat("/archive", http.request.uri.path) == "/archive/a"',
        {"http.request.uri.path": "/a"},
        True,
    ),
    (
        f'any(decode_base64({H}["client_id"][*])[*] eq "123abc")',
        {H: {"client_id": ["MTIzYWJj"]}},
        True,
    ),
    ('ends_with(http.request.uri.path, ".html")', {"http.request.uri.path": "/welcome.html"}, True),
    (f'join({H}.names, ",") == "a,b"', {f"{H}.names": ["a", "b"]}, True),
    (f'join({H}.names, ",") == ""', {f"{H}.names": []}, True),
    ("len(http.host) == 11", {"http.host": "example.com"}, True),
    (
        'lookup_json_integer(http.request.headers["x"][0], "version") == 2',
        {H: {"x": ['{ "record_id": "aed53a", "version": 2 }']}},
        True,
    ),
    (
        'lookup_json_integer(http.request.headers["x"][0], "product", "id") == 356',
        {H: {"x": ['{ "product": { "id": 356 } }']}},
        True,
    ),
    (
        'lookup_json_integer(http.request.headers["x"][0], 1) == -234',
        {H: {"x": ['["first_item", -234]']}},
        True,
    ),
    (
        'lookup_json_integer(http.request.headers["x"][0], "network_ids", 0) == 123',
        {H: {"x": ['{ "network_ids": [123, 456] }']}},
        True,
    ),
    (
        'lookup_json_integer(http.request.headers["x"][0], 1, "product_id") == 456',
        {H: {"x": ['[{ "product_id": 123 }, { "product_id": 456 }]']}},
        True,
    ),
    (
        'lookup_json_string(http.request.headers["x"][0], "company") == "cloudflare"',
        {H: {"x": ['{ "company": "cloudflare", "product": "rulesets" }']}},
        True,
    ),
    (
        'lookup_json_string(http.request.headers["x"][0], "network", "name") == "cloudflare"',
        {H: {"x": ['{ "network": { "name": "cloudflare" } }']}},
        True,
    ),
    (
        'lookup_json_string(http.request.headers["x"][0], "networks", 1) == "cloudflare"',
        {H: {"x": ['{ "networks": ["other_company", "cloudflare"] }']}},
        True,
    ),
    (
        'remove_bytes(http.host, "\\x2e\\x77") == "cloudflarecom"',
        {"http.host": "www.cloudflare.com"},
        True,
    ),
    (
        f'split({H}["x-categories"][0], ",", 64)[3] == "auto"',
        {H: {"x-categories": ["groceries,electronics,diy,auto"]}},
        True,
    ),
    (
        f'split({H}["x-categories"][0], ",", 3)[2] == "diy,auto"',
        {H: {"x-categories": ["groceries,electronics,diy,auto"]}},
        True,
    ),
    (
        f'len(split({H}["x-categories"][0], ",", 3)) == 3',
        {H: {"x-categories": ["groceries,electronics,diy,auto"]}},
        True,
    ),
    (
        f'split({H}["x-categories"][0], ",", 64)[1] == ""',
        {H: {"x-categories": ["groceries,,electronics"]}},
        True,
    ),
    (
        'starts_with(http.request.uri.path, "/blog")',
        {"http.request.uri.path": "/blog/first-post"},
        True,
    ),
    (
        'substring(http.request.uri.path, 2, 5) == "dfg"',
        {"http.request.uri.path": "asdfghjk"},
        True,
    ),
    (
        'substring(http.request.uri.path, 2) == "dfghjk"',
        {"http.request.uri.path": "asdfghjk"},
        True,
    ),
    ('substring(http.request.uri.path, -2) == "jk"', {"http.request.uri.path": "asdfghjk"}, True),
    (
        'substring(http.request.uri.path, 0, -2) == "asdfgh"',
        {"http.request.uri.path": "asdfghjk"},
        True,
    ),
    ('to_string(ip.src.asnum) == "5"', {"ip.src.asnum": 5}, True),
    ('to_string(ssl) == "true"', {"ssl": True}, True),
    ('upper(http.host) == "WWW.CLOUDFLARE.COM"', {"http.host": "www.cloudflare.com"}, True),
    (
        'url_decode(http.request.uri.query) == "John Doe"',
        {"http.request.uri.query": "John%20Doe"},
        True,
    ),
    (
        'url_decode(http.request.uri.query) == "John Doe"',
        {"http.request.uri.query": "John+Doe"},
        True,
    ),
    ('url_decode(http.request.uri.query) == "%20"', {"http.request.uri.query": "%2520"}, True),
    ('url_decode(http.request.uri.query, "r") == " "', {"http.request.uri.query": "%2520"}, True),
    (
        'url_decode(http.request.uri.query, "u") == "\\xe2\\x98\\x81"',
        {"http.request.uri.query": "%u2601"},
        True,
    ),
    # The setup hagate replaces
    ("(not cf.tls_client_auth.cert_verified)", {}, True),
    ("(not cf.tls_client_auth.cert_verified)", {"cf.tls_client_auth.cert_verified": True}, False),
]


@pytest.mark.parametrize(
    ("expression", "values", "expected"),
    CASES,
    ids=[f"{i}:{c[0][:40]}" for i, c in enumerate(CASES)],
)
def test_documented_result(expression: str, values: dict[str, Any], expected: bool) -> None:
    assert evaluate(expression, values) is expected
