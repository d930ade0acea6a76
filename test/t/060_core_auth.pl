# 060_core_auth.pl -- issue 10, defects #1 (empty secrets log in), #2 (SCRAM final + reset
# crashes the process) and #13 (unknown users are distinguishable from known ones).

use strict;
use warnings;

use Test::More;
use Time::HiRes qw(time sleep);
use PgSlab::Test::Cluster;
use PgSlab::Test::Proxy;
use PgSlab::Test::Wire;

my $node = PgSlab::Test::Cluster->new(name => 'c060');
$node->start;
$node->create_user('app', 'app_pw');
$node->create_user('fsuper', 'fsuper_pw', superuser => 1);
$node->create_user('gone', 'gone_pw');
$node->create_user('emptyu', 'emptyu_pw');
$node->create_user('u_md5', 'md5_pw', method => 'md5');
my $cport = $node->port;

# Refused: an ErrorResponse with SQLSTATE 28P01 and no ReadyForQuery.
sub refused_28p01
{
	my ($o, $name) = @_;
	ok(!$o->{ready} && $o->{error} && $o->{error}{C} eq '28P01', $name)
	    or diag('got ' . describe_outcome($o));
}

sub try_login
{
	my ($proxy, $user, $pw, $db) = @_;
	my $s = raw_connect($proxy->host, $proxy->port);
	my $o = password_login($s, $user, $pw, database => $db);
	close $s;
	return $o;
}

# --- #1: empty secrets, for each password method ---------------------------------------------
for my $auth ('plain', 'md5', 'scram-sha-256') {
	my $proxy = PgSlab::Test::Proxy->new(
		cluster   => $node,
		name      => "p060_$auth",
		databases => {
			postgres => "host=127.0.0.1 port=$cport dbname=postgres",
			fdb      => "host=127.0.0.1 port=$cport dbname=postgres user=fsuper password=fsuper_pw",
		},
		settings => {
			auth_type   => $auth,
			pool_mode   => 'transaction',
			admin_users => $node->superuser . ',gone',
		},
		userlist => [ [ 'app', 'app_pw' ], [ 'gone', 'gone_pw' ], [ 'emptyu', '' ] ]);
	$proxy->start;

	my $o = try_login($proxy, 'app', 'app_pw', 'fdb');
	ok($o->{ready}, "#1 $auth: legitimate login of app to the forced-user database fdb")
	    or diag('got ' . describe_outcome($o));
	$o = try_login($proxy, 'app', 'app_pw', 'fdb');	# twice: the forced user's cred exists now
	refused_28p01(try_login($proxy, 'fsuper', '', 'fdb'),
		"#1 $auth: forced user fsuper (superuser) with an empty password refused with 28P01");
	refused_28p01(try_login($proxy, 'fsuper', 'wrong', 'fdb'),
		"#1 $auth: forced user fsuper with a wrong password refused with 28P01");
	refused_28p01(try_login($proxy, 'fsuper', '', 'postgres'),
		"#1 $auth: forced user fsuper with an empty password to another database refused");
	refused_28p01(try_login($proxy, 'emptyu', '', 'postgres'),
		"#1 $auth: a user whose userlist secret is \"\" cannot log in with \"\"");
	refused_28p01(try_login($proxy, 'emptyu', 'emptyu_pw', 'postgres'),
		"#1 $auth: a user whose userlist secret is \"\" cannot log in with its server password");

	# An admin removed from auth_file by a reload.
	$o = try_login($proxy, 'gone', 'gone_pw', 'pgslab');
	ok($o->{ready}, "#1 $auth: admin 'gone' logs in to the console before the reload")
	    or diag('got ' . describe_outcome($o));
	$o = try_login($proxy, 'gone', 'gone_pw', 'postgres');
	ok($o->{ready}, "#1 $auth: 'gone' logs in to postgres before the reload")
	    or diag('got ' . describe_outcome($o));
	$proxy->set_userlist([ [ 'app', 'app_pw' ], [ 'emptyu', '' ] ]);
	$proxy->reload;
	# The reload is asynchronous: wait until it is visible to a new login.
	my $deadline = time + 5;
	while (time < $deadline) {
		last if !try_login($proxy, 'gone', 'gone_pw', 'pgslab')->{ready};
		sleep(0.2);
	}
	refused_28p01(try_login($proxy, 'gone', 'gone_pw', 'pgslab'),
		"#1 $auth: after RELOAD removed it, 'gone' cannot log in to the console with its old password");
	refused_28p01(try_login($proxy, 'gone', '', 'pgslab'),
		"#1 $auth: after RELOAD removed it, 'gone' cannot log in to the console with \"\"");
	refused_28p01(try_login($proxy, 'gone', '', 'postgres'),
		"#1 $auth: after RELOAD removed it, 'gone' cannot log in to postgres with \"\"");
	refused_28p01(try_login($proxy, 'gone', 'gone_pw', 'postgres'),
		"#1 $auth: after RELOAD removed it, 'gone' cannot log in to postgres with its old password");
	ok($proxy->is_running, "#1 $auth: pgslab still running");
	$proxy->stop;
}

# --- #2: SCRAM client-final then RST, 50 times ------------------------------------------------
{
	my $proxy = PgSlab::Test::Proxy->new(
		cluster  => $node,
		name     => 'p060_rst',
		settings => { auth_type => 'scram-sha-256', pool_mode => 'transaction' },
		userlist => userlist_from_cluster($node, 'app'));
	$proxy->start;
	# Warm the pool so that the final step would complete the login at once.
	is($proxy->safe_psql('postgres', 'SELECT 1', user => 'app', password => 'app_pw'), '1',
		'#2: pool warmed up');
	my $steps_ok = 0;
	for my $i (1 .. 50) {
		last unless $proxy->is_running;
		my $s = eval { raw_connect($proxy->host, $proxy->port) } or last;
		$steps_ok += scram_abandon($s, 'app', 'app_pw', 'final_sent');
		raw_reset($s);
	}
	sleep(0.5);
	ok($proxy->is_running, '#2: pgslab still running after 50 SCRAM logins reset after the final message')
	    or diag("exit status " . ($proxy->exit_status // 'undef'));
	my $o = $proxy->is_running ? try_login($proxy, 'app', 'app_pw', 'postgres') : { msgs => [] };
	ok($o->{ready}, '#2: a normal SCRAM login works afterwards') or diag('got ' . describe_outcome($o));
	cmp_ok($steps_ok, '>=', 1, '#2: the SCRAM exchanges reached the final message');
	$proxy->stop;
}

# --- #13: unknown users look like known users with a wrong password -----------------------------
for my $case ([ 'scram-sha-256', 'app', $node->user_secret('app') ],
	      [ 'md5', 'u_md5', $node->user_secret('u_md5') ]) {
	my ($auth, $known, $secret) = @$case;
	my $proxy = PgSlab::Test::Proxy->new(
		cluster  => $node,
		name     => "p060_u_$auth",
		settings => { auth_type => $auth, pool_mode => 'transaction' },
		userlist => [ [ $known, $secret ] ]);
	$proxy->start;
	my $k = try_login($proxy, $known, 'wrong password', 'postgres');
	my $u = try_login($proxy, 'nosuchuser', 'wrong password', 'postgres');
	ok($k->{error} && $u->{error}, "#13 $auth: both logins refused")
	    or diag('known: ' . describe_outcome($k) . '; unknown: ' . describe_outcome($u));
	is_deeply($u->{methods}, $k->{methods},
		"#13 $auth: same authentication request code for unknown and known user");
	is($u->{error} && $u->{error}{C}, $k->{error} && $k->{error}{C},
		"#13 $auth: same SQLSTATE for unknown and known user");
	my $km = $k->{error} ? $k->{error}{M} : '';
	my $um = $u->{error} ? $u->{error}{M} : '';
	(my $kn = $km) =~ s/\Q$known\E/<USER>/g;
	(my $un = $um) =~ s/nosuchuser/<USER>/g;
	is($un, $kn, "#13 $auth: same error message apart from the user name");
	unlike($um, qr/"\?"/, "#13 $auth: the unknown user's name is not replaced by \"?\"");
	$proxy->stop;
}

done_testing();
