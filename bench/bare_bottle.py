"""The baseline of the benchmark's GET / measure: one Bottle route that returns a static HTML
page, served exactly as claude_ops.py serves (monkey-patched gevent, `claude_ops.listen`'s socket,
a gevent.pywsgi.WSGIServer with log=None).

  python bench/bare_bottle.py PORT PAGE_FILE
"""

from gevent import monkey

monkey.patch_all()

import os
import sys

import bottle
import gevent.pywsgi

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import claude_ops  # noqa: E402  (for its listen(), after the patching it also does)


def main():
    port, page_file = int(sys.argv[1]), sys.argv[2]
    with open(page_file, "rb") as page:
        body = page.read()
    web = bottle.Bottle()

    @web.get("/")
    def index():
        bottle.response.content_type = "text/html; charset=utf-8"
        return body

    server = gevent.pywsgi.WSGIServer(claude_ops.listen("127.0.0.1", port), web, log=None,
                                      error_log=claude_ops.log)
    server.serve_forever()


if __name__ == "__main__":
    main()
