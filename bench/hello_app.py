"""The ceiling reference for discovery and JWKS (``bench/run.py --hello``): a bare Flask app served
by the same server as ``idp serve`` (Granian, same workers and threads). Issue 7 asks discovery and
JWKS to be within 10 % of the fastest "hello" the server can serve."""
from flask import Flask, jsonify

app = Flask(__name__)


@app.get("/hello")
def hello():
    return "hello"


@app.get("/hello.json")
def hello_json():
    return jsonify(hello="world")
