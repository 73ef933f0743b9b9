'use strict';
// Node preload for NNI's manager (``node --require listen_host.js``), shipped with srnas-nni.
//
// NNI's manager calls ``app.listen(port)`` with no host, so Node binds every interface. This file
// makes every TCP server of the process bind the address in SRNAS_NNI_HOST instead (127.0.0.1 when
// unset): a listen() without a host, or with a wildcard host (0.0.0.0, ::), gets that address;
// IPC listens (paths, handles) are left alone. When the address is a specific non-loopback one, the
// server also accepts on 127.0.0.1 at the same port, because NNI's own Python side reaches its
// manager through "localhost".
//
// srnas-nni puts this file in NODE_OPTIONS for the manager only and saves what NODE_OPTIONS held
// before in SRNAS_NNI_PREVIOUS_NODE_OPTIONS; once loaded, the environment is put back (SRNAS_NNI_*
// removed), so the tuner and trial processes the manager starts see the user's own environment.

const net = require('net');

const HOST = process.env.SRNAS_NNI_HOST || '127.0.0.1';
const HOME = process.env.SRNAS_NNI_HOME;
const WILDCARDS = new Set(['', '0.0.0.0', '::', '::0', '[::]']);
const LOOPBACKS = new Set(['localhost', '::1', '[::1]']);

if (process.env.SRNAS_NNI_PREVIOUS_NODE_OPTIONS !== undefined) {
  process.env.NODE_OPTIONS = process.env.SRNAS_NNI_PREVIOUS_NODE_OPTIONS;
} else {
  delete process.env.NODE_OPTIONS;
}
delete process.env.SRNAS_NNI_PREVIOUS_NODE_OPTIONS;
delete process.env.SRNAS_NNI_HOST;
delete process.env.SRNAS_NNI_HOME;

// NNI's manager reads its index of experiments from <home>/nni-experiments/.experiment, with the
// home directory of os.homedir(); srnas-nni keeps that index under the run (SRNAS_NNI_HOME).
if (HOME) {
  const os = require('os');
  os.homedir = () => HOME;
}

function isLoopback(host) {
  return LOOPBACKS.has(host) || /^127\./.test(host);
}

function isPort(value) {
  return typeof value === 'number' || (typeof value === 'string' && /^\d+$/.test(value));
}

function hostOf(host) {
  return host === undefined || host === null || WILDCARDS.has(host) ? HOST : host;
}

// Accept loopback connections too when the server binds one specific non-loopback address.
function alsoOnLoopback(server) {
  server.once('listening', () => {
    const address = server.address();
    if (!address || typeof address !== 'object') {
      return;
    }
    const relay = net.createServer((socket) => server.emit('connection', socket));
    relay.on('error', (error) => {
      process.emitWarning(`srnas-nni: cannot also listen on 127.0.0.1:${address.port}: ${error.message}`);
    });
    originalListen.call(relay, address.port, '127.0.0.1');
    server.once('close', () => relay.close());
  });
}

const originalListen = net.Server.prototype.listen;

net.Server.prototype.listen = function listen(...args) {
  let host = null;
  if (args.length === 0 || typeof args[0] === 'function') {
    host = HOST;
    args.unshift({ port: 0, host });
  } else if (isPort(args[0])) {
    if (typeof args[1] === 'string') {
      args[1] = hostOf(args[1]);
    } else {
      args.splice(1, 0, HOST);
    }
    host = args[1];
  } else if (args[0] !== null && typeof args[0] === 'object' && args[0].path === undefined
             && args[0].handle === undefined && args[0].fd === undefined && !(args[0] instanceof net.Server)
             && args[0]._handle === undefined) {
    host = hostOf(args[0].host);
    args[0] = { ...args[0], host };
  }
  if (host !== null && !WILDCARDS.has(host) && !isLoopback(host)) {
    alsoOnLoopback(this);
  }
  return originalListen.apply(this, args);
};
