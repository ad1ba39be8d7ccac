"""A small OpenAI-compatible chat completions server on lora_nb's own generation (hand-written)."""
# `lora-nb serve --port 8011` (or `python -m lora_nb.serve`) serves the embedded model (or `--model <folder or hub
# id>`, and `--adapter <run id, run folder or adapter folder>` on its base model) at `http://127.0.0.1:8011/v1`:
# `GET /v1/models` and `POST /v1/chat/completions` (no streaming). It lets any OpenAI-compatible client, and
# `lora_nb.judge.EndpointJudge`, talk to a model loaded here.
# `transformers serve` does the same with more features, but needs the `transformers[serving]` extras (fastapi,
# uvicorn, openai), which lora_nb does not depend on; this one uses only the standard library.
from __future__ import annotations
import argparse, json, threading, time, uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

__all__ = ['make_server', 'add_arguments', 'serve', 'main']

def _completion(model_name:str, text:str, finish:str='stop') -> dict:
    return {'id': f'chatcmpl-{uuid.uuid4().hex[:12]}', 'object': 'chat.completion', 'created': int(time.time()),
            'model': model_name, 'choices': [{'index': 0, 'message': {'role': 'assistant', 'content': text},
                                              'finish_reason': finish}]}

def make_server(lm, host:str='127.0.0.1', port:int=8011, name:str='lora-nb',
                adapter:str|None=None) -> ThreadingHTTPServer:
    "An HTTP server answering chat completions with `lm` (a `LoadedModel`); call `serve_forever()` on it."
    from lora_nb.chat import reply
    from lora_nb.errors import LoraNbError
    lock = threading.Lock()   # one generation at a time: the model is shared

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *a): pass

        def _send(self, code:int, obj:dict):
            body = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header('Content-Type', 'application/json')
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _error(self, code:int, msg:str):
            self._send(code, {'error': {'message': msg, 'type': 'invalid_request_error'}})

        def do_GET(self):
            if self.path.rstrip('/') in ('/v1/models', '/models'):
                models = [{'id': name, 'object': 'model', 'owned_by': 'lora_nb'}]
                return self._send(200, {'object': 'list', 'data': models})
            self._error(404, f"No route {self.path}")

        def do_POST(self):
            if self.path.rstrip('/') not in ('/v1/chat/completions', '/chat/completions'):
                return self._error(404, f"No route {self.path}")
            try:
                req = json.loads(self.rfile.read(int(self.headers.get('Content-Length') or 0)) or b'{}')
                msgs = [{'role': m['role'], 'content': m['content']} for m in req['messages']]
            except (ValueError, KeyError, TypeError) as e: return self._error(400, f"Bad request: {e}")
            if req.get('stream'): return self._error(400, "Streaming is not supported by this server")
            temp = float(req.get('temperature') or 0.0)
            try:
                with lock:
                    text = reply(lm.model, lm.tokenizer, msgs, adapter=adapter,
                                 max_new_tokens=int(req.get('max_tokens') or 256),
                                 do_sample=temp > 0, temperature=temp or 1.0, top_p=float(req.get('top_p') or 1.0))
            except LoraNbError as e: return self._error(400, e.message)
            self._send(200, _completion(req.get('model') or name, text))

    return ThreadingHTTPServer((host, port), Handler)

def add_arguments(p:argparse.ArgumentParser):
    "The server's options, for `python -m lora_nb.serve` and `lora-nb serve`."
    p.add_argument('--model', default=None,
                   help="hub id or folder (default: the adapter's base model, else the embedded tiny base)")
    p.add_argument('--quantization', default='none', choices=['none', '8bit', '4bit'])
    p.add_argument('--adapter', default=None, help='a run id (under --runs-root), a run folder or an adapter folder')
    p.add_argument('--runs-root', default=None, help='where run ids are looked up (default: $LORA_NB_RUNS or ./runs)')
    p.add_argument('--host', default='127.0.0.1')
    p.add_argument('--port', type=int, default=8011, help='0 picks a free port (the address is printed)')
    p.add_argument('--name', default='lora-nb', help='the model name the server reports')

def _adapter_folder(adapter:str, root) -> str:
    "The adapter folder of a run id, a run folder or an adapter folder."
    from lora_nb.adapters import adapter_dir
    from lora_nb.runs import find_run
    return str(adapter_dir(find_run(adapter, root).path))

def serve(a:argparse.Namespace) -> int:
    "Load the model (and adapter) that `a` names, and answer chat completions until Ctrl-C."
    from lora_nb.adapters import adapter_base
    from lora_nb.models import load_model
    ad = _adapter_folder(a.adapter, a.runs_root) if a.adapter else None
    lm = load_model(a.model or (adapter_base(ad) if ad else None), quantization=a.quantization)
    if ad:
        from lora_nb.adapters import load
        lm.model = load(lm.model, ad, 'served')
    try: srv = make_server(lm, a.host, a.port, a.name, 'served' if ad else None)
    except OSError as e:
        from lora_nb.errors import LoraNbError
        raise LoraNbError(f"Can't listen on {a.host}:{a.port} ({e.strerror or e})", where='--port',
                          hint="Choose another --port (0 picks a free one), or stop what is listening there.") from None
    print(f"serving {a.name} at http://{a.host}:{srv.server_address[1]}/v1" + (f" (adapter {ad})" if ad else ''),
          flush=True)
    try: srv.serve_forever()
    except KeyboardInterrupt: pass
    finally: srv.server_close()
    return 0

def main(argv=None):
    p = argparse.ArgumentParser(prog='python -m lora_nb.serve', description=__doc__)
    add_arguments(p)
    return serve(p.parse_args(argv))

if __name__ == '__main__': main()
