"""The baseline of the benchmark's GET / measure: one Bottle route that returns a static HTML
page, served exactly as claude_ops.py serves (monkey-patched gevent, `claude_ops.listen`'s socket,
`claude_ops.wsgi_server`'s server).

  python bench/bare_bottle.py APP_DIR PORT PAGE_FILE

APP_DIR is the folder of the claude_ops.py under test, whose listen() makes the socket and whose
wsgi_server() the server.
"""

from gevent import monkey

monkey.patch_all()

import gc
import sys

import bottle


def main():
    app_dir, port, page_file = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    sys.path.insert(0, app_dir)
    import claude_ops  # its own monkey.patch_all() finds everything patched
    with open(page_file, "rb") as page:
        body = page.read()
    web = bottle.Bottle()

    @web.get("/")
    def index():
        bottle.response.content_type = "text/html; charset=utf-8"
        return body

    server = claude_ops.wsgi_server(claude_ops.listen("127.0.0.1", port), web)
    server.start()
    gc.collect()  # as claude_ops.py's main() does once it has started
    gc.freeze()
    server.serve_forever()


if __name__ == "__main__":
    main()
