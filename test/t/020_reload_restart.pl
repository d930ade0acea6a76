# 020_reload_restart.pl -- RELOAD warns about settings that need a restart and applies the rest.

use strict;
use warnings;

use Test::More;
use PgSlab::Test::Cluster;
use PgSlab::Test::Proxy;

my $node = PgSlab::Test::Cluster->new(name => 'c020');
$node->start;
my $proxy = PgSlab::Test::Proxy->new(
	cluster  => $node,
	name     => 'p020',
	settings => { pool_mode => 'transaction', default_pool_size => 4 },
	userlist => userlist_from_cluster($node));
$proxy->start;

my $port     = $proxy->port;
my $new_port = PgSlab::Test::Cluster::get_free_port();

# The file gets a new listen_port and pool size; the test object keeps
# talking to the running port, which the reload must not touch.
$proxy->set(listen_port => $new_port, default_pool_size => 7);
$proxy->write_config;
$proxy->set(listen_port => $port);
$proxy->admin('RELOAD');

ok($proxy->wait_for_log(
		qr/WARNING.*reload: listen_port changed from '$port' to '$new_port', which needs a restart/),
	'RELOAD: a WARNING names listen_port as needing a restart');
unlike($proxy->log_content, qr/reload: default_pool_size/,
	'... and no warning for a reloadable setting');
my ($d) = grep { $_->{name} eq 'postgres' } $proxy->admin_hash('SHOW DATABASES');
is($d->{pool_size}, 7, 'the reloadable default_pool_size took effect');
is(eval { $proxy->safe_psql('postgres', 'SELECT 1') }, '1',
	'still serving on the old port');

$proxy->stop;
$node->stop;
done_testing();
