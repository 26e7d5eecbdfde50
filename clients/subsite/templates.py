"""Inline Jinja templates of the department subsite (bilingual, Chinese first)."""

BASE = """<!DOCTYPE html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }} · {{ site_name }}</title>
<style>
 body { font-family: system-ui, "PingFang SC", "Microsoft YaHei", sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
 header { border-bottom: 2px solid #b71c1c; margin-bottom: 1.5rem; }
 table { border-collapse: collapse; width: 100%; }
 th, td { border: 1px solid #ccc; padding: .3rem .6rem; text-align: left; vertical-align: top; word-break: break-all; }
 th { background: #f5f5f5; width: 30%; }
 .error { color: #b71c1c; }
 .notice { background: #fff8e1; border: 1px solid #ffe082; padding: .5rem .8rem; }
 a.button { display: inline-block; padding: .5rem 1rem; background: #b71c1c; color: #fff; text-decoration: none; border-radius: 4px; }
</style>
</head>
<body>
<header><h1>{{ site_name }}</h1></header>
<main>
{{ body }}
</main>
</body>
</html>
"""

INDEX = """{% if user %}
<p>已登录 / Signed in as <strong id="display-name">{{ display_name }}</strong></p>
<table id="claims">
<thead><tr><th>声明 / Claim</th><th>值 / Value</th></tr></thead>
<tbody>
{% for key, value in user | dictsort %}
<tr><th>{{ key }}</th><td>{{ value }}</td></tr>
{% endfor %}
</tbody>
</table>
<p><a class="button" href="{{ url_for('logout') }}">退出 / Sign out</a></p>
{% else %}
{% if notice == "logout" %}
<p class="notice" id="signed-out"><strong>已退出 / Signed out</strong>：您已退出统一身份认证。/ You have been signed out of the city account.</p>
{% elif notice == "expired" %}
<p class="notice" id="session-expired"><strong>登录已过期 / Signed out</strong>：请重新登录。/ Your sign-in has expired; please sign in again.</p>
{% endif %}
<p>您尚未登录。/ You are not signed in.</p>
<p><a class="button" href="{{ url_for('login') }}">统一身份认证登录 / Sign in with the city account</a></p>
{% endif %}
"""

ERROR = """<h2 class="error">登录失败 / Sign-in failed</h2>
<p class="error" id="error-message">{{ message_zh }} / {{ message_en }}</p>
{% if error %}<p>错误代码 / Error code: <code id="error-code">{{ error }}</code></p>{% endif %}
{% if description %}<p>说明 / Description: {{ description }}</p>{% endif %}
<p><a href="{{ url_for('index') }}">返回首页 / Back to the home page</a></p>
"""

# Front-Channel Logout 1.0 §2: rendered in the provider's hidden iframe; nothing to see.
FRONTCHANNEL = """<!DOCTYPE html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>已退出 / Signed out · {{ site_name }}</title></head>
<body><p>已退出 / Signed out</p></body></html>
"""
