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
