#!/usr/bin/env python3
"""make_seeds.py -- write the seed corpora test/fuzz/corpus/<target>/ and the dictionaries.

Run from the repository root when a target's input format changes; the
output is committed.  Seeds are small, valid (or nearly valid) inputs that
show each target its format; the fuzzer finds the rest.
"""
import base64
import os
import re
import struct

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)))


def startup(params, code=196608):
    body = struct.pack('>I', code) + b''.join(k + b'\0' + v + b'\0' for k, v in params) + b'\0'
    return struct.pack('>I', len(body) + 4) + body


def msg(t, body):
    return t + struct.pack('>I', len(body) + 4) + body


def cstr(s):
    return s + b'\0'


SEEDS = {}

SEEDS['fuzz_startup'] = {
    'v3': startup([(b'user', b'app'), (b'database', b'postgres'),
                   (b'application_name', b'psql'), (b'client_encoding', b'UTF8')]),
    'v3_options': startup([(b'user', b'u'), (b'options', b'-c search_path=x'),
                           (b'_pq_.foo', b'1')], code=196610),
    'ssl': struct.pack('>II', 8, 80877103),
    'gssenc': struct.pack('>II', 8, 80877104),
    'cancel': struct.pack('>IIII', 16, 80877102, 1234, 5678),
}

rows = msg(b'T', struct.pack('>H', 1) + cstr(b'a') + struct.pack('>IHIhih', 0, 0, 25, -1, -1, 0))
SEEDS['fuzz_proto'] = {
    'error': b'\x40' + msg(b'E', b'SERROR\0VERROR\0C42601\0Msyntax error\0P7\0\0'),
    'notice_params': b'\x10' + msg(b'N', b'SNOTICE\0C00000\0Mhi\0\0') +
    msg(b'S', b'client_encoding\0UTF8\0') + msg(b'Z', b'I'),
    'rows': b'\xff' + rows + msg(b'D', struct.pack('>HI', 1, 3) + b'abc') +
    msg(b'C', b'SELECT 1\0'),
}

# one byte per step: bit 7 reply, bits 0-4 index (see fuzz_track.c tables)
REQ = 'QFSPBDECcfHdXpx'
REP = 'DdcHVNAS123nstTCIGEZ'


def steps(s):
    out = bytearray()
    for tok in s.split():
        d, t = tok[0], tok[1]
        out.append(REQ.index(t) if d == '>' else 0x80 | REP.index(t))
    return bytes(out)


SEEDS['fuzz_track'] = {
    'simple': steps('>Q <T <D <C <Z'),
    'extended': steps('>P >B >D >E >S <1 <2 <T <D <C <Z'),
    'copy_in': steps('>Q <G >d >c <C <Z'),
    'ext_copy': steps('>P >B >E >S <1 <2 <G >d >c <C <Z'),
    'error_pipeline': steps('>P >B >E >P >B >E >S <1 <E <Z'),
    'deep': bytes([0x40]) + bytes([0x80 | REP.index('C'), 0x80 | REP.index('Z')]) + bytes([31]),
}

client = (startup([(b'user', b'app'), (b'database', b'db')]) +
          msg(b'Q', b'select 1\0') + msg(b'P', b'\0select $1\0\0\0') +
          msg(b'B', b'\0\0\0\0\0\0\0\0') + msg(b'E', b'\0\0\0\0\0') + msg(b'S', b'') +
          msg(b'X', b''))
server = (msg(b'R', struct.pack('>I', 0)) + msg(b'S', b'TimeZone\0UTC\0') +
          msg(b'K', struct.pack('>II', 1, 2)) + msg(b'Z', b'I') + rows +
          msg(b'D', struct.pack('>HI', 1, 1) + b'1') + msg(b'C', b'SELECT 1\0') + msg(b'Z', b'I'))


def stream_seed(sel, c, s):
    split = len(c) * 255 // (len(c) + len(s)) + 1
    return bytes(sel) + bytes([min(split, 255)]) + c + s


SEEDS['fuzz_stream'] = {
    'session': stream_seed([3, 3, 3], client, server),
    'small_buffers': stream_seed([0, 1, 1], client, server),
    'sslrequest': stream_seed([3, 3, 3], struct.pack('>II', 8, 80877103) + client, server),
}

SEEDS['fuzz_scram_server'] = {
    'raw': b'\x00n,,n=,r=rOprNGfwEbeRWgbNEkqO\nc=biws,r=rOprNGfwEbeRWgbNEkqOfuzzServerNonce,'
    b'p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
    'raw_y': b'\x02y,,n=user,r=abc,x=ext\nc=eSws,r=abcfuzzServerNonce,p=AAAA',
    'round_trip': b'\x01user\nclientnonce\npencil',
    'round_trip_escaped': b'\x21us=er,x\nn0nce\np\xc3\xa9ncil',
}

salt = base64.b64encode(b'fuzzsaltfuzzsalt')
SEEDS['fuzz_scram_client'] = {
    'passthrough': b'\x00r=fuzzClientNonceSERVER,s=' + salt + b',i=16\nv=AAAA',
    'password': b'\x01r=fuzzClientNonceSERVER,s=' + salt + b',i=16\ne=invalid-proof',
    'ext': b'\x00r=fuzzClientNonceX,s=c2FsdA==,i=4096,x=y\nv=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
}

KEY = b'zVZH3Ff8nDGZeQSl0EkqRG5LfBL2yL47ev7XLHhQyEg='
VERIFIER = b'SCRAM-SHA-256$4096:c2FsdHNhbHRzYWx0$' + KEY + b':' + KEY
SEEDS['fuzz_pwd'] = {
    'md5': b'md5d41d8cd98f00b204e9800998ecf8427e\napp\nmd5aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\nabcd',
    'plain': b'secret\napp\nc2VjcmV0\n\x01\x02\x03\x04',
    'scram': VERIFIER + b'\nuser\n\xc2\xa0pass\xc2\xadword\n0000',
}

with open(os.path.join(ROOT, '..', '..', 'conf', 'pgslab.ini'), 'rb') as f:
    ini = f.read()
ini_short = b'\n'.join(l for l in ini.split(b'\n') if l and not l.startswith(b';'))
SEEDS['fuzz_config'] = {
    'example': ini_short,
    'include': b'[databases]\n%include b.ini\n[pgbouncer]\nlisten_port = 6433\n%include c.ini\n'
    b'\xfe' b'db1 = host=127.0.0.1 port=5432 dbname=x pool_size=3\n* = host=localhost\n'
    b'\xfe' b'[users]\napp = pool_mode=session max_user_connections=4\n',
    'loop': b'%include b.ini\n\xfe%include b.ini\n',
}

with open(os.path.join(ROOT, '..', '..', 'conf', 'userlist.txt'), 'rb') as f:
    SEEDS['fuzz_userlist'] = {'example': f.read(),
                              'quotes': b'"a""b" "md5d41d8cd98f00b204e9800998ecf8427e"\n; c\n"x" ""\n'}

SEEDS['fuzz_connstr'] = {
    'db': b"host=127.0.0.1 port=5432 dbname='my db' user=app password='it''s \\\\ \\'q'",
    'user': b'pool_mode = transaction  max_user_connections=10',
}

SEEDS['fuzz_admin_cmd'] = {
    'show': b'SHOW POOLS;',
    'set': b"SET default_pool_size = 30",
    'set_to': b"set log_connections TO '0' ;",
    'set_quoted': b'SET "server_reset_query" = \'DISCARD ALL; SELECT \'\'x\'\'\'',
    'pause': b'PAUSE "my""db"',
    'kill_client': b'KILL_CLIENT 12',
}

# HBA text \xfe ident text \xfe @file a \xfe @file b \xfe probe (flags, 16
# address bytes, db\nuser\nsystem-user\nmap): see fuzz_hba.c
HBA = (b'# TYPE DATABASE USER ADDRESS METHOD\n'
       b'local   all       all                         peer map=m1\n'
       b'host    db1       alice   10.0.0.0/8          reject\n'
       b'host    db1,db9   all     10.0.0.0 255.0.0.0  md5\n'
       b'hostssl all       all     0.0.0.0/0           cert map=m2\n'
       b'host    sameuser  all     192.168.1.0/24      scram-sha-256 # trailing\n'
       b'host    all       @a      127.0.0.1/32        trust\n'
       b'host    @b        all     127.0.0.0/8         password\n'
       b'host    "all"     all     ::1/128             md5\n'
       b'host    replication all   fe80::/10           reject\n'
       b'hostnossl all     all     all                 scram-sha-256\n')
IDENT = b'm1 alice bob\nm1 /^(.*)@example\\.com$ \\1\nm2 carol all\nm2 "dave" "Dave"\n'


def probe(flags, addr, db, user, sys_user, mp):
    return bytes([flags]) + addr.ljust(16, b'\0') + b'\n'.join([db, user, sys_user, mp])


SEEDS['fuzz_hba'] = {
    'every_form': HBA + b'\xfe' + IDENT + b'\xfe' + b'# admins\nroot, "Mixed Case"\n  ops\n' +
    b'\xfe' + b'db1 db2,db3\n@a\n' + b'\xfe' + probe(0, bytes([127, 0, 0, 1]), b'db2', b'ops',
                                                     b'alice', b'm1'),
    'local_peer': b'local all all peer map=m1\nlocal sameuser all md5\n\xfe' + IDENT +
    b'\xfe\xfe\xfe' + probe(1, b'', b'app', b'bob', b'x@example.com', b'm1'),
    'ipv6_tls': b'hostssl all all ::/0 cert\nhost all "+grp" ::1/128 trust\n\xfe\xfe\xfe\xfe' +
    probe(6, bytes(15) + b'\x01', b'd', b'u', b'u', b''),
    'include_loop': b'host all @a all trust\n\xfe\xfea, b\n@b\n\xfe@a\n\xfe' +
    probe(0, b'', b'x', b'a', b'', b''),
}

# script: max-1, then (op, len, body) steps; op bits as in fuzz_prep.c
PARSE, BIND, DESCRIBE, CLOSE, SETTLE, SYNC, RESET, CLASSIFY = range(8)
CL1, SV1, CTX, SURE, ANSWERED = 8, 16, 32, 64, 8


def parse_body(name, q, types=()):
    return cstr(name) + cstr(q) + struct.pack('>H', len(types)) + b''.join(
        struct.pack('>I', t) for t in types)


def bind_body(portal, name, params=()):
    return (cstr(portal) + cstr(name) + struct.pack('>HH', 0, len(params)) +
            b''.join(struct.pack('>I', len(p)) + p for p in params) + struct.pack('>H', 0))


def step(op, body=b''):
    return bytes([op, len(body)]) + body


def settle(n, answered=True, server=0):
    return step(SETTLE | (ANSWERED if answered else 0) | server | ((n - 1) << 5))


SEEDS['fuzz_prep'] = {
    'parse_bind': b'\x01' + step(PARSE | SURE, parse_body(b'a', b'SELECT $1', [23])) +
    settle(1) + step(BIND, bind_body(b'', b'a', [b'42'])) + step(DESCRIBE, b'Sa\0') +
    step(SYNC) + step(CLOSE, b'Sa\0') + settle(1),
    'evict': b'\x00' + step(PARSE | SURE, parse_body(b'a', b'SELECT 1')) + settle(1) +
    step(PARSE | SURE, parse_body(b'b', b'SELECT 2')) + settle(2) +
    step(BIND, bind_body(b'p', b'a')) + settle(3, False) +
    step(PARSE | CL1, parse_body(b'c', b'SELECT 1')) + step(BIND | SV1, bind_body(b'', b'a')),
    'two_clients': b'\x02' + step(PARSE | SURE, parse_body(b's', b'SELECT 3')) + settle(1) +
    step(PARSE | SURE | CL1, parse_body(b't', b'SELECT 3')) + step(SYNC) +
    step(BIND | CL1, bind_body(b'', b't')) + settle(1, False) + step(BIND | CL1, bind_body(b'', b't')) +
    step(PARSE | CTX, parse_body(b's', b'SELECT 3')) + step(CLOSE | CL1, b'St\0') +
    settle(2, False) + step(RESET | (1 << 3)) + step(RESET | (2 << 3) | 32) + step(RESET),
    'long_text': b'\x03' + step(PARSE, parse_body(b'big', b'SELECT ' + b'x' * 220)) +
    settle(1) + step(BIND, bind_body(b'', b'big')),
    'classify': b'\x00' + step(CLASSIFY, b' /* c */ DEALLOCATE PREPARE ALL;') +
    step(CLASSIFY, b'DISCARD ALL\0') + step(CLASSIFY, b'-- x\nprepare q as select 1') +
    step(CLASSIFY, b'DEALLOCATE ALL\0'),
}

DICTS = {
    'fuzz_startup': ['user', 'database', 'options', 'application_name', 'replication',
                     'client_encoding', '_pq_.', '\\x00\\x03\\x00\\x00', '\\x00\\x03\\x00\\x02',
                     '\\x04\\xd2\\x16\\x2f', '\\x04\\xd2\\x16\\x2e', '\\x04\\xd2\\x16\\x30'],
    'fuzz_proto': ['S', 'V', 'C', 'M', 'D', 'H', 'P', 'ERROR', 'FATAL', '\\x00\\x00\\x00\\x04'],
    'fuzz_stream': ['Q', 'P', 'B', 'E', 'S', 'X', 'p', 'Z', 'T', 'D', 'C', 'G', 'c', 'd', 'f', 'H',
                    '\\x00\\x00\\x00\\x04', '\\x00\\x00\\x00\\x05', '\\x00\\x03\\x00\\x00',
                    '\\x04\\xd2\\x16\\x2f', 'Z\\x00\\x00\\x00\\x05I'],
    'fuzz_scram_server': ['n,,', 'y,,', 'p=tls-server-end-point,,', 'n=', 'r=', 'a=', 'm=',
                          'c=biws', 'c=eSws', 'p=', 'fuzzServerNonce', ',', '='],
    'fuzz_scram_client': ['r=', 's=', 'i=', 'v=', 'e=', 'm=', 'fuzzClientNonce', 'i=16',
                          's=' + salt.decode(), 'i=4096', 'e=invalid-proof'],
    'fuzz_pwd': ['md5', 'SCRAM-SHA-256$', '4096:', '$', ':', '==', '\\xc2\\xa0', '\\xc2\\xad',
                 '\\xef\\xbf\\xbd', '\\xcc\\x84'],
    'fuzz_config': ['[databases]', '[pgbouncer]', '[users]', '[peers]', '%include b.ini',
                    '%include c.ini', 'host=', 'port=', 'dbname=', 'user=', 'password=',
                    'pool_size=', 'pool_mode=', 'auth_type', 'listen_addr', '\\xfe', ' = ', '*'],
    'fuzz_userlist': ['"', '""', ';', '#', 'md5', 'SCRAM-SHA-256$'],
    'fuzz_connstr': ['=', "'", "''", "\\\\'", '\\\\\\\\', 'host', 'port', 'dbname'],
    'fuzz_admin_cmd': ['SHOW', 'SET', 'TO', '=', ';', '"', "'", 'pools', 'default_pool_size',
                       'log_connections', 'pool_mode', 'auth_type', 'max_client_conn',
                       'server_reset_query', 'listen_addr', 'KILL', 'PAUSE'],
    'fuzz_hba': ['local', 'host', 'hostssl', 'hostnossl', 'all', 'sameuser', 'samerole',
                 'samegroup', 'replication', 'trust', 'reject', 'md5', 'password',
                 'scram-sha-256', 'cert', 'peer', 'ldap', 'map=', 'map=m1', '@a', '@b', '+',
                 ',', '#', '""', '/', '/8', '/32', '/128', '0.0.0.0', '255.255.255.0', '::',
                 '::1', 'ffff::', '127.0.0.1', 'samehost', '\\\\1', '^', '(.*)', '$', '\\xfe'],
    'fuzz_prep': ['\\x00', '\\x00\\x00', '\\x00\\x01\\x00\\x00\\x00\\x17', 'S', 'PGSLAB_',
                  'PGSLAB_1', 'SELECT 1', 'PREPARE\\x00', 'DEALLOCATE ALL\\x00',
                  'DISCARD ALL\\x00', 'deallocate', 'prepare', 'execute', 'discard', 'all',
                  '/*', '*/', '--', '\\x08', '\\x48', '\\x40', '\\x18', '\\x0c', '\\x05'],
}

# every [pgbouncer] setting name, for the config and SET dictionaries
names = sorted(set(re.findall(rb'^;?\s*([a-z_0-9]+)\s*=', ini, re.M)))
for n in names:
    DICTS['fuzz_config'].append(n.decode())
    DICTS['fuzz_admin_cmd'].append(n.decode())

for target, seeds in SEEDS.items():
    d = os.path.join(ROOT, 'corpus', target)
    os.makedirs(d, exist_ok=True)
    for name, data in seeds.items():
        with open(os.path.join(d, name), 'wb') as f:
            f.write(data)

for target, words in DICTS.items():
    with open(os.path.join(ROOT, target + '.dict'), 'w') as f:
        f.write('# libFuzzer dictionary for %s (written by make_seeds.py)\n' % target)
        for w in dict.fromkeys(words):
            f.write('"%s"\n' % w.replace('"', '\\"'))
