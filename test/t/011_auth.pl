# 011_auth.pl -- client authentication (trust, plain, md5, scram-sha-256) and login to the server behind.

use strict;
use warnings;

use utf8;
use Test::More;
use Encode qw(encode_utf8);
use Digest::MD5 qw(md5_hex);
use Time::HiRes qw(sleep);
use POSIX ();
use PgSlab::Test::Cluster;
use PgSlab::Test::Proxy;
use PgSlab::Test::Wire;

my $node = PgSlab::Test::Cluster->new(name => 'c011',
	hba => [ 'host all u_md5 127.0.0.1/32 md5', 'host all u_long 127.0.0.1/32 password' ]);
$node->start;
# PgBouncer's longest password (MAX_PASSWORD 2048, with the NUL), as its suite's "longpass"
my $long_pw = 'a' x 2047;
$node->create_user('u_long', $long_pw);
my $weird = 'u_wé "ird';
my $weird_pw = encode_utf8("pä'ss \"wörd");
$node->create_user('u_scram', 'scram_pw');
$node->create_user('u_plain', 'plain_pw');
$node->create_user('u_md5', 'md5_pw', method => 'md5');
$node->create_user(encode_utf8($weird), $weird_pw);
$node->create_user('u_late', 'late_pw');

my $scram_v = $node->user_secret('u_scram');
my $md5_v = $node->user_secret('u_md5');
is($md5_v, 'md5' . md5_hex('md5_pwu_md5'), 'u_md5 has an md5 verifier on the server');
like($scram_v, qr/^SCRAM-SHA-256\$/, 'u_scram has a SCRAM verifier on the server');

my @userlist = (
	[ 'u_scram', $scram_v ],
	[ 'u_plain', 'plain_pw' ],
	[ 'u_md5', $md5_v ],
	[ encode_utf8($weird), $node->user_secret(encode_utf8($weird)) ],
	[ 'u_long', $long_pw ],
);

sub login_ok
{
	my ($proxy, $user, $pw, $name, %o) = @_;
	my $dbh = eval { $proxy->connect_dbi('postgres', user => $user, password => $pw, %o) };
	my $who = $dbh ? eval { $dbh->selectrow_array('SELECT current_user') } : undef;
	$who = encode_utf8($who) if defined $who && utf8::is_utf8($who);	# DBD::Pg decodes UTF-8
	is($who, $user, $name) or diag($DBI::errstr // $@);
	$dbh->disconnect if $dbh;
}

sub login_fails
{
	my ($proxy, $user, $pw, $name, $re) = @_;
	my $dbh = eval { $proxy->connect_dbi('postgres', user => $user, password => $pw) };
	ok(!$dbh, $name);
	like($DBI::errstr // '', $re // qr/(?:password|SASL) authentication failed/, '... with the auth error')
	    if !$dbh;
	$dbh->disconnect if $dbh;
}

sub new_proxy
{
	my ($auth, @list) = @_;
	my $p = PgSlab::Test::Proxy->new(cluster => $node, name => "p011_$auth",
		settings => { auth_type => $auth, pool_mode => 'transaction' },
		userlist => \@list);
	$p->start;
	return $p;
}

# --- scram-sha-256 ---------------------------------------------------------------------------------------
{
	my $p = new_proxy('scram-sha-256', @userlist);
	login_ok($p, 'u_scram', 'scram_pw', 'scram: SCRAM verifier in auth_file, pass-through to the server');
	login_fails($p, 'u_scram', 'wrong', 'scram: wrong password refused');
	login_ok($p, 'u_plain', 'plain_pw', 'scram: plain-text secret in auth_file');
	login_fails($p, 'u_plain', 'wrong', 'scram: wrong password for a plain-text secret refused');
	login_ok($p, encode_utf8($weird), $weird_pw,
		'scram: user name with space/quote/UTF-8, password with quotes and UTF-8');
	login_fails($p, 'nobody', 'x', 'scram: user not in auth_file refused');
	# as PgBouncer: an md5 secret cannot check a SCRAM proof, and there is no fallback to md5
	login_fails($p, 'u_md5', 'md5_pw', 'scram: md5 secret in auth_file, right password: refused',
		qr/SASL authentication failed/);
	ok($p->wait_for_log(qr/C-\d+: postgres\/u_md5\@\S+ SCRAM authentication failed: user has MD5 secret/),
		'... and PgBouncer\'s line says why');
	is($p->safe_psql('postgres', 'SELECT current_user', user => 'u_scram',
		password => 'scram_pw', host => $p->socket_dir), 'u_scram',
		'scram: login over the Unix socket');
	my ($rc, $out, $err) = $p->psql('postgres', 'SELECT 1', user => 'u_scram',
		password => 'scram_pw', params => { channel_binding => 'require' });
	isnt($rc, 0, 'scram: channel_binding=require cannot be met without TLS');
	my @r = $p->admin('SHOW VERSION');
	is(scalar @r, 1, 'scram: admin console login as an admin user (SCRAM verifier)');

	# pgbench: many SCRAM logins (-C) in a row.
	($rc, $out, $err) = $p->pgbench('-n', '-C', '-c', '2', '-t', '25', '-f', '-',
		{ stdin => "SELECT 1;\n", env => { PGUSER => 'u_scram', PGPASSWORD => 'scram_pw' } });
	is($rc, 0, 'scram: pgbench -C (50 SCRAM logins)') or diag($err);
	like($out, qr/number of failed transactions: 0 /, '... zero failed');

	# auth_file reload: a new user appears, then is removed.
	login_fails($p, 'u_late', 'late_pw', 'scram: user not yet in auth_file refused');
	$p->set_userlist([ @userlist, [ 'u_late', $node->user_secret('u_late') ] ]);
	$p->reload;
	my $ok;
	for (1 .. 50) {
		last if $ok = eval { $p->connect_dbi('postgres', user => 'u_late', password => 'late_pw') };
		sleep(0.1);
	}
	ok($ok, 'scram: after SIGHUP, a user added to auth_file can log in');
	$ok->disconnect if $ok;
	$p->set_userlist(\@userlist);
	$p->reload;
	my $gone;
	for (1 .. 50) {
		$gone = !eval { $p->connect_dbi('postgres', user => 'u_late', password => 'late_pw') };
		last if $gone;
		sleep(0.1);
	}
	ok($gone, 'scram: after SIGHUP, a user removed from auth_file is refused');
	is($p->stop, 0, 'scram proxy exits cleanly');
}

# --- md5 -------------------------------------------------------------------------------------------------
{
	my $p = new_proxy('md5', @userlist);
	login_ok($p, 'u_md5', 'md5_pw', 'md5: md5 verifier in auth_file, md5 login to the server');
	login_fails($p, 'u_md5', 'wrong', 'md5: wrong password refused');
	login_ok($p, 'u_plain', 'plain_pw', 'md5: plain-text secret in auth_file');
	login_fails($p, 'u_plain', 'wrong', 'md5: wrong password for a plain-text secret refused');
	login_ok($p, 'u_scram', 'scram_pw', 'md5: a SCRAM secret makes pgslab ask for SCRAM instead');
	login_fails($p, 'u_scram', 'wrong', 'md5: ... and a wrong password is refused');
	is($p->stop, 0, 'md5 proxy exits cleanly');
}

# --- plain -------------------------------------------------------------------------------------------------
{
	my $p = new_proxy('plain', @userlist);
	login_ok($p, 'u_plain', 'plain_pw', 'plain: clear-text password against a plain-text secret');
	login_fails($p, 'u_plain', 'wrong', 'plain: wrong password refused');
	login_ok($p, 'u_md5', 'md5_pw', 'plain: clear-text password against an md5 secret');
	login_fails($p, 'u_md5', 'wrong', 'plain: wrong password against an md5 secret refused');
	# A right clear-text password against a SCRAM secret cannot log in to the
	# server: no SCRAM keys.  PgBouncer's words, for the client and in the log.
	login_fails($p, 'u_scram', 'scram_pw', 'plain: right password against a SCRAM secret: no server login',
		qr/server login failed: wrong password type/);
	ok($p->wait_for_log(qr/S-\d+: postgres\/u_scram\@\S+ cannot do SCRAM authentication: password is SCRAM secret but client authentication did not provide SCRAM keys/),
		'... the log says why (PgBouncer\'s line)');
	login_fails($p, 'u_scram', 'wrong', 'plain: wrong password against a SCRAM secret refused');
	# PgBouncer's longest password; one byte more is a wrong password, not an error
	login_ok($p, 'u_long', $long_pw, 'plain: a 2047-byte password logs in (and to the server)');
	login_fails($p, 'u_long', "X$long_pw", 'plain: a 2048-byte password is a wrong password',
		qr/password authentication failed for user "u_long"/);
	my $s = raw_connect($p->host, $p->port);
	my $o = password_login($s, 'u_long', '');
	close $s;
	ok($o->{error} && $o->{error}{C} eq '28P01' && !$o->{ready},
		'plain: the long-password user with an empty password refused') or diag(describe_outcome($o));
	$s = raw_connect($p->host, $p->port);
	$o = password_login($s, 'u_long', 'y' x 10000);
	close $s;
	ok($o->{error} && $o->{error}{M} eq 'password packet too long' && !$o->{ready},
		'plain: a password over the startup packet\'s bound (10000 bytes) is refused unread')
		or diag(describe_outcome($o));
	is($p->stop, 0, 'plain proxy exits cleanly');
}

# --- trust -------------------------------------------------------------------------------------------------
{
	my $p = new_proxy('trust', @userlist);
	login_ok($p, 'u_plain', undef, 'trust: no password asked; pgslab logs in with the auth_file password');
	login_ok($p, 'u_plain', 'anything', 'trust: any password is ignored');
	login_ok($p, 'u_md5', undef, 'trust: md5 secret used for the server login');
	my $dbh = eval { $p->connect_dbi('postgres', user => 'nobody', password => undef) };
	ok(!$dbh, 'trust: a user missing from auth_file is still refused');
	is($p->stop, 0, 'trust proxy exits cleanly');
}

# --- login to the server: PgBouncer's words when it fails ------------------------------------------------
{
	my $cport = $node->port;
	my $base = "host=127.0.0.1 port=$cport dbname=postgres";
	my $p = PgSlab::Test::Proxy->new(cluster => $node, name => 'p011_server',
		databases => {
			postgres => $base,
			badpw    => "$base user=u_plain password=wrong",
			longdb   => "$base user=u_long",
			md5db    => "$base user=u_md5",
		},
		settings => { auth_type => 'trust', pool_mode => 'transaction' },
		# u_md5's server secret is md5, but pgslab holds a SCRAM verifier for it
		userlist => [ [ 'u_plain', 'plain_pw' ], [ 'u_long', $long_pw ], [ 'u_md5', $scram_v ] ]);
	$p->start;
	my ($rc, $out, $err) = $p->psql('badpw', 'SELECT 1', user => 'u_plain', timeout => 20);
	like($err, qr/password authentication failed for user "u_plain"/,
		'server: a wrong password in [databases]: the server\'s error reaches the client');
	ok($p->wait_for_log(qr/S-\d+: badpw\/u_plain\@\S+ closing because: password authentication failed for user "u_plain"/),
		'... and the server connection closes with the server\'s words (as PgBouncer)');
	is($p->safe_psql('longdb', 'SELECT current_user', user => 'u_plain'), 'u_long',
		'server: a 2047-byte password from the auth_file logs in to PostgreSQL');
	($rc, $out, $err) = $p->psql('md5db', 'SELECT 1', user => 'u_plain', timeout => 20);
	like($err, qr/server login failed: wrong password type/,
		'server: md5 asked, only a SCRAM secret held: "wrong password type"');
	ok($p->wait_for_log(qr/S-\d+: md5db\/u_md5\@\S+ cannot do MD5 authentication: wrong password type/),
		'... logged as PgBouncer does');
	is($p->stop, 0, 'server-login proxy exits cleanly');
}

# --- a refused login finds its reason in the log when it has the error (as PgBouncer, whose log is
# synchronous; here the client waits for the log writer, the event loop does not) --------------------------
sub refusals_logged_first
{
	my ($p, $n, $db, $user, $pw, $name) = @_;
	my $late = 0;
	# busy CPUs, as in a test suite run: the log writer thread is not
	# scheduled at once (a client that did not wait would win the race)
	my @burn;
	for (1 .. 3) {
		my $pid = fork() // die "fork: $!";
		if ($pid == 0) { my $x = 0; $x++ while 1; POSIX::_exit(0) }
		push @burn, $pid;
	}
	for my $i (1 .. $n) {
		my $s = raw_connect($p->host, $p->port);
		my ($t, $b, $m, $log);
		raw_send($s, startup_packet(user => $user, database => $db));
		while (1) {
			($t, $b) = read_msg($s, 5);
			last if $t ne 'R';
			my $code = unpack('N', $b);
			next if $code != 5;
			raw_send($s, frontend_message('p', md5_password($user, $pw, substr($b, 4, 4)) . "\0"));
		}
		# the log file, read the moment the error is in (not after the close)
		($log) = split /\n--- pgslab stdout\/stderr ---\n/, $p->log_content if $t eq 'E';
		close $s;
		$m = $t eq 'E' ? parse_fields($b)->{M} : "no error ($t)";
		$late++ unless defined $log && $log =~ /C-\d+: \S+ closing because: \Q$m\E \(age=/;
		diag("attempt $i: $m") unless $t eq 'E';
	}
	kill 'KILL', @burn;
	waitpid($_, 0) for @burn;
	is($late, 0, "$name: in $n refusals, the log had the line when the client had the error");
}
{
	my $cport = $node->port;
	my $p = PgSlab::Test::Proxy->new(cluster => $node, name => 'p011_order',
		databases => {
			postgres => "host=127.0.0.1 port=$cport dbname=postgres",
			nopg     => "host=127.0.0.1 port=$cport dbname=no_such_db_011",
		},
		settings => { auth_type => 'md5', server_login_retry => 0 },
		userlist => [ [ 'u_plain', 'plain_pw' ] ]);
	$p->start;
	refusals_logged_first($p, 60, 'postgres', 'u_plain', 'wrong', 'wrong password');
	refusals_logged_first($p, 40, 'nopg', 'u_plain', 'plain_pw', 'server login refused (no such database)');
	refusals_logged_first($p, 20, 'nosuchdb', 'u_plain', 'plain_pw', 'no such database');
	is($p->safe_psql('postgres', 'SELECT 1', user => 'u_plain', password => 'plain_pw'), '1',
		'... and a good login still works at once');
	is($p->stop, 0, 'log-order proxy exits cleanly');
}

# --- secrets longer than PgBouncer's are refused where they are read, never cut ---------------------------
{
	my $cport = $node->port;
	my $p = PgSlab::Test::Proxy->new(cluster => $node, name => 'p011_longfile',
		settings => { auth_type => 'plain' },
		userlist => [ [ 'u_plain', 'plain_pw' ], [ 'u_long', "X$long_pw" ] ]);
	ok(!eval { $p->start; 1 }, 'a 2048-byte secret in the auth_file: pgslab refuses to start');
	like($p->log_content, qr/userlist\.txt:\d+: password too long in auth file \(at most 2047 bytes\)/,
		'... saying where (PgBouncer\'s words)');
	$p->teardown;
	$p = PgSlab::Test::Proxy->new(cluster => $node, name => 'p011_longdb',
		databases => { postgres => "host=127.0.0.1 port=$cport dbname=postgres user=u_long password=X$long_pw" },
		settings => { auth_type => 'trust' }, userlist => [ [ 'u_plain', 'plain_pw' ] ]);
	ok(!eval { $p->start; 1 }, 'a 2048-byte password= in [databases]: pgslab refuses to start');
	like($p->log_content, qr/too long \(at most 2047 bytes\)/, '... saying so');
	$p->teardown;
}

done_testing();
