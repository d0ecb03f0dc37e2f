package GlmTest;

# GlmTest: a core-Perl harness for the prove-run HTTP tests of ngx_glm,
# after nginx-tests' lib/Test/Nginx.pm.  Each test object owns a temporary
# prefix holding nginx.conf, the logs, nginx's temp paths and the engine
# socket; it starts an engine (the fake by default), starts Debian's nginx
# with the module loaded, and on finish() stops both and fails the test
# when error.log holds [alert]/[crit]/[emerg] or a sanitizer report.
#
# Environment:
#   GLM_TEST_NGINX   nginx binary (default /usr/sbin/nginx)
#   GLM_TEST_MODULE  the module (default build/nginx/ngx_http_glm_module.so)
#   GLM_TEST_ENGINE  engine command with %SOCKET% (and optionally %LOG%),
#                    e.g. "build/glm-engine serve --model
#                    t/fixtures/glm45-air-tiny --socket %SOCKET%"; default:
#                    build/fake_engine.  Tests needing the fake's switches
#                    skip themselves when another engine is used.
#   GLM_TEST_KEEP=1  keep the temporary directory (its path is printed)
#   GLM_TEST_NGINX_PRELOAD  LD_PRELOAD for nginx alone, to run a module
#                    built with sanitizers (ngx_glm_module/build.sh) in the
#                    stock binary: /usr/lib/x86_64-linux-gnu/libasan.so.8
#
# Deadlines wait for something that must happen (a pid file, a response, a
# health change); they are generous so that a busy machine, where the ASan
# engine runs many times slower, only makes a test slower, never red.  No
# test asserts speed.
#
# When run as root, workers run as nobody: the prefix is made traversable
# and the engine is started as in production, with --socket-group set to
# the workers' group (the socket stays 0660 and only the workers' group may
# connect, ring.h's Peers); otherwise the workers run as the user running
# the tests, the engine's own uid, which is all it admits by default.

use strict;
use warnings;

use Cwd qw(abs_path);
use Errno qw(EINTR);
use File::Basename qw(dirname);
use File::Temp qw(tempdir);
use IO::Socket::INET;
use IO::Socket::UNIX;
use JSON::PP;
use POSIX qw(WNOHANG);
use Socket qw(SOCK_STREAM);
use Test::More;
use Time::HiRes qw(sleep time);

our $REPO = abs_path(dirname(__FILE__) . '/../..');

our $LOCATIONS = <<'END';
        location = /v1/chat/completions { glm_pass chat; }
        location = /v1/completions { glm_pass completions; }
        location = /v1/models { glm_pass models; }
        location = /tokenize { glm_pass tokenize; }
        location = /detokenize { glm_pass detokenize; }
        location = /version { glm_pass version; }
        location = /metrics {
            allow 127.0.0.1;
            deny all;
            glm_pass metrics;
        }
        location = /health { glm_health; }
        location = /ping { glm_health post; }
        error_page 405 413 429 @glm_error;
        location @glm_error { glm_pass error; }
END

my @living;

sub new {
    my ($class, %o) = @_;
    my $self = bless {
        nginx   => $ENV{GLM_TEST_NGINX} || '/usr/sbin/nginx',
        module  => $ENV{GLM_TEST_MODULE}
                   || "$REPO/build/nginx/ngx_http_glm_module.so",
        engine_cmd => $ENV{GLM_TEST_ENGINE},
        workers => $o{workers} || 1,
        engine_args => $o{engine_args} || [],
    }, $class;

    $self->{fake} = !defined $self->{engine_cmd};
    $self->{engine_cmd} //= "$REPO/build/fake_engine --socket %SOCKET% "
                            . "--log %LOG% --socket-mode 0660";

    for my $f ($self->{nginx}, $self->{module},
               $self->{fake} ? "$REPO/build/fake_engine" : ())
    {
        BAIL_OUT("$f is missing: build first (make test builds it)")
            unless -e $f;
    }

    $self->{dir} = tempdir('glm-test-XXXXXXXX', TMPDIR => 1,
                           CLEANUP => !$ENV{GLM_TEST_KEEP});
    diag("test directory $self->{dir}") if $ENV{GLM_TEST_KEEP};
    chmod 0755, $self->{dir};
    $self->{socket} = "$self->{dir}/engine.sock";
    $self->{port} = free_port();

    push @living, $self;
    return $self;
}

# the group the workers run in when the tests run as root
sub worker_group { getgrnam('nogroup') ? 'nogroup' : 'nobody' }

sub fake { $_[0]{fake} }
sub dir { $_[0]{dir} }
sub port { $_[0]{port} }
sub h2_port { $_[0]{h2_port} }

sub free_port {
    my $s = IO::Socket::INET->new(Listen => 1, LocalAddr => '127.0.0.1',
                                  LocalPort => 0, ReuseAddr => 1)
        or die "no free port: $!";
    my $port = $s->sockport;
    close $s;
    return $port;
}

# ---- configuration -------------------------------------------------------

# write_conf(http => TEXT, server => TEXT, main => TEXT)
sub write_conf {
    my ($self, %o) = @_;
    my $d = $self->{dir};
    my $user = '';

    if ($> == 0) {
        $user = 'user nobody ' . worker_group() . ';';
    }

    my $server = $o{server} // $LOCATIONS;
    my $h2 = '';

    if ($o{http2}) {
        $self->{h2_port} //= free_port();
        $h2 = "        listen 127.0.0.1:$self->{h2_port} http2;";
    }

    my $conf = <<"END";
load_module $self->{module};
$user
daemon off;
master_process on;
worker_processes $self->{workers};
pid $d/nginx.pid;
error_log $d/error.log info;
@{[ $o{main} // '' ]}

events {
    worker_connections 1024;
}

http {
    access_log $d/access.log;
    client_body_temp_path $d/client_body_temp;
    proxy_temp_path $d/proxy_temp;
    fastcgi_temp_path $d/fastcgi_temp;
    uwsgi_temp_path $d/uwsgi_temp;
    scgi_temp_path $d/scgi_temp;

    glm_engine unix:$self->{socket};
    glm_connect_retry 200ms;
@{[ $o{http} // '' ]}
    server {
        listen 127.0.0.1:$self->{port};
$h2
        server_name localhost;
$server
    }
}
END
    write_file("$d/nginx.conf", $conf);
    return $self;
}

sub write_file {
    my ($path, $text) = @_;
    open my $fh, '>', $path or die "$path: $!";
    print $fh $text;
    close $fh;
}

sub read_file {
    my ($path) = @_;
    open my $fh, '<', $path or return '';
    local $/;
    my $text = <$fh>;
    close $fh;
    return $text // '';
}

# ---- processes -----------------------------------------------------------

sub spawn {
    my ($out, $env, @cmd) = @_;
    my $pid = fork() // die "fork: $!";
    if ($pid == 0) {
        @ENV{keys %$env} = values %$env;
        open STDIN, '<', '/dev/null';
        open STDOUT, '>>', $out;
        open STDERR, '>&', \*STDOUT;
        exec @cmd or POSIX::_exit(127);
    }
    return $pid;
}

# start_engine(args => [...]): returns once the socket accepts connections
sub start_engine {
    my ($self, %o) = @_;
    my $cmd = $self->{engine_cmd};
    my @args = @{ $o{args} // $self->{engine_args} };

    $cmd =~ s/%SOCKET%/$self->{socket}/g;
    $cmd =~ s/%LOG%/$self->{dir}\/engine.log/g;
    $cmd .= ' ' . join(' ', @args) if $self->{fake} && @args;
    $cmd .= ' --socket-group ' . worker_group() if $> == 0;

    unlink $self->{socket};
    $self->{engine_pid} = spawn("$self->{dir}/engine.stderr", {}, 'sh', '-c',
                                "exec $cmd");

    my $deadline = time() + ($o{timeout} // 60);
    while (time() < $deadline) {
        if (-S $self->{socket}) {
            my $c = IO::Socket::UNIX->new(Type => SOCK_STREAM,
                                          Peer => $self->{socket});
            if ($c) {
                close $c;
                return $self;
            }
        }
        if (waitpid($self->{engine_pid}, WNOHANG) > 0) {
            delete $self->{engine_pid};
            die "engine exited at start-up:\n"
                . read_file("$self->{dir}/engine.stderr");
        }
        sleep 0.02;
    }
    die "engine socket $self->{socket} did not appear";
}

sub engine_pid { $_[0]{engine_pid} }

sub kill_engine {
    my ($self, $sig) = @_;
    my $pid = delete $self->{engine_pid} or return;
    kill $sig // 'KILL', $pid;
    waitpid($pid, 0);
}

# the engine died by itself (fake die:N): reap it
sub reap_engine {
    my ($self, $timeout) = @_;
    my $pid = $self->{engine_pid} or return 1;
    my $deadline = time() + ($timeout // 5);
    while (time() < $deadline) {
        if (waitpid($pid, WNOHANG) > 0) {
            delete $self->{engine_pid};
            return 1;
        }
        sleep 0.02;
    }
    return 0;
}

sub start_nginx {
    my ($self) = @_;
    my $d = $self->{dir};

    my %env;
    if ($ENV{GLM_TEST_NGINX_PRELOAD}) {
        %env = (LD_PRELOAD => $ENV{GLM_TEST_NGINX_PRELOAD},
                ASAN_OPTIONS => $ENV{ASAN_OPTIONS} // 'detect_leaks=0');
    }

    unlink "$d/nginx.pid";
    $self->{nginx_pid} = spawn("$d/nginx.stderr", \%env, $self->{nginx},
                               '-p', "$d/", '-c', "$d/nginx.conf",
                               '-e', "$d/error.log");

    my $deadline = time() + 30;
    while (time() < $deadline) {
        last if -s "$d/nginx.pid";
        if (waitpid($self->{nginx_pid}, WNOHANG) > 0) {
            delete $self->{nginx_pid};
            die "nginx failed to start:\n" . read_file("$d/nginx.stderr")
                . read_file("$d/error.log");
        }
        sleep 0.02;
    }
    die "nginx did not write its pid" unless -s "$d/nginx.pid";
    return $self;
}

# run(http => ..., server => ..., engine => 0): engine, nginx, healthy;
# run(conf => TEXT) takes a whole nginx.conf instead of the template
sub run {
    my ($self, %o) = @_;
    if (defined $o{conf}) {
        write_file("$self->{dir}/nginx.conf", $o{conf});
    } else {
        $self->write_conf(%o);
    }
    $self->start_engine unless defined $o{engine} && !$o{engine};
    $self->start_nginx;
    $self->wait_health(200) unless defined $o{engine} && !$o{engine};
    return $self;
}

sub wait_health {
    my ($self, $want, $timeout) = @_;
    my $deadline = time() + ($timeout // 30);
    my $status = 0;
    while (time() < $deadline) {
        # several workers: every one must be attached, and a request goes
        # to any of them, so ask a few times in a row
        my $ok = 0;
        for (1 .. 2 * $self->{workers}) {
            $status = $self->get('/health')->{status};
            $ok++ if $status == $want;
        }
        return 1 if $ok == 2 * $self->{workers};
        sleep 0.05;
    }
    die "/health did not become $want (last $status)";
}

# SIGHUP, then waits until the new workers have started and, where an
# engine runs, attached to it (else a request reaching a new worker first
# would get its 503)
sub reload {
    my ($self) = @_;
    my $count = sub {
        my $log = read_file("$self->{dir}/error.log");
        my $started = () = $log =~ /start worker process/g;
        my $attached = () = $log =~ /glm: attached to engine/g;
        return ($started, $attached);
    };
    my ($started, $attached) = $count->();
    my $want_attached = $self->{engine_pid} ? $self->{workers} : 0;
    kill 'HUP', $self->{nginx_pid};
    my $deadline = time() + 30;
    while (time() < $deadline) {
        my ($s, $a) = $count->();
        return 1 if $s >= $started + $self->{workers}
                    && $a >= $attached + $want_attached;
        sleep 0.05;
    }
    die "no new workers attached after reload";
}

sub stop {
    my ($self) = @_;
    if (my $pid = delete $self->{nginx_pid}) {
        kill 'QUIT', $pid;
        my $deadline = time() + 30;
        while (waitpid($pid, WNOHANG) == 0) {
            if (time() > $deadline) {
                kill 'KILL', $pid;
                waitpid($pid, 0);
                last;
            }
            sleep 0.05;
        }
    }
    $self->kill_engine('TERM');
}

# stops everything and adds the error.log checks as tests
sub finish {
    my ($self) = @_;
    $self->stop;

    my $log = read_file("$self->{dir}/error.log");
    my @bad = grep { /\[(alert|crit|emerg)\]/ } split /\n/, $log;
    ok(!@bad, 'no alerts in error.log') or diag(join "\n", @bad);

    my $san = join '', map { read_file("$self->{dir}/$_") }
                       qw(error.log nginx.stderr engine.stderr);
    ok($san !~ /(AddressSanitizer|LeakSanitizer|runtime error:)/,
       'no sanitizer reports') or diag($san);

    @living = grep { $_ != $self } @living;
}

sub error_log { read_file("$_[0]{dir}/error.log") }
sub engine_log { read_file("$_[0]{dir}/engine.log") }

# waits until the engine log matches; returns the match or undef
sub wait_engine_log {
    my ($self, $re, $timeout) = @_;
    my $deadline = time() + ($timeout // 5);
    while (time() < $deadline) {
        my $log = $self->engine_log;
        return $1 // $& if $log =~ $re;
        sleep 0.02;
    }
    return undef;
}

END {
    for my $t (@living) {
        kill 'KILL', $t->{nginx_pid} if $t->{nginx_pid};
        kill 'KILL', $t->{engine_pid} if $t->{engine_pid};
    }
}

# ---- HTTP ----------------------------------------------------------------

sub connect_http {
    my ($self) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => $self->{port},
                                  Proto => 'tcp')
        or die "connect to nginx: $!";
    $s->autoflush(1);
    return $s;
}

# raw request text -> raw response text (the server closes the connection)
sub http {
    my ($self, $raw, %o) = @_;
    my $s = $self->connect_http;
    print $s $raw;
    my $resp = '';
    my $deadline = time() + ($o{timeout} // 60);
    while (time() < $deadline) {
        my $n = read_some($s, \$resp, $deadline - time());
        last if !defined $n || $n == 0;
    }
    close $s;
    return $resp;
}

# appends what arrives within $timeout; bytes read, 0 at EOF, undef on
# timeout
sub read_some {
    my ($s, $buf, $timeout) = @_;
    my $rin = '';
    vec($rin, fileno($s), 1) = 1;
    my $n = select(my $rout = $rin, undef, undef, $timeout > 0 ? $timeout : 0);
    return undef if $n <= 0;
    my $got = sysread($s, my $chunk, 65536);
    return 0 if !$got;
    $$buf .= $chunk;
    return $got;
}

# reads until $re matches the buffer (returns it) or the time is up
sub read_until {
    my ($s, $re, $timeout, $buf) = @_;
    my $acc = $buf // '';
    my $deadline = time() + ($timeout // 10);
    while ($acc !~ $re && time() < $deadline) {
        my $n = read_some($s, \$acc, $deadline - time());
        last if defined $n && $n == 0;
    }
    return $acc;
}

sub build_request {
    my (%o) = @_;
    my $method = $o{method} // 'GET';
    my $version = $o{version} // '1.1';
    my $req = "$method $o{path} HTTP/$version\r\nHost: localhost\r\n";
    $req .= "Connection: close\r\n" unless $o{keepalive};
    $req .= "Content-Type: $o{type}\r\n" if defined $o{type};
    for my $h (@{ $o{headers} // [] }) {
        $req .= "$h\r\n";
    }
    if (defined $o{body}) {
        if ($o{chunked}) {
            $req .= "Transfer-Encoding: chunked\r\n\r\n";
            $req .= sprintf("%x\r\n%s\r\n", length $o{body}, $o{body})
                if length $o{body};
            $req .= "0\r\n\r\n";
            return $req;
        }
        $req .= 'Content-Length: ' . length($o{body}) . "\r\n";
    }
    return $req . "\r\n" . ($o{body} // '');
}

sub parse_response {
    my ($raw) = @_;
    my %r = (raw => $raw, status => 0, headers => {}, body => '');
    my ($head, $body) = split /\r\n\r\n/, $raw, 2;
    return \%r unless defined $head;
    my @lines = split /\r\n/, $head;
    ($r{version}, $r{status}) = (shift(@lines) // '') =~ m{^HTTP/(\S+) (\d+)};
    $r{status} //= 0;
    for (@lines) {
        my ($k, $v) = /^([^:]+):\s*(.*)$/ or next;
        $r{headers}{lc $k} = $v;
    }
    $body //= '';
    if (($r{headers}{'transfer-encoding'} // '') =~ /chunked/i) {
        my $out = '';
        while ($body =~ s/^([0-9a-fA-F]+)\r\n//) {
            my $n = hex $1;
            last if $n == 0;
            $out .= substr($body, 0, $n, '');
            $body =~ s/^\r\n//;
        }
        $r{complete} = $body =~ /^\r\n/ ? 1 : 0;
        $body = $out;
    }
    $r{body} = $body;
    if (($r{headers}{'content-type'} // '') =~ m{^application/json}) {
        $r{json} = eval { decode_json($body) };
    }
    return \%r;
}

sub request {
    my ($self, %o) = @_;
    return parse_response($self->http(build_request(%o),
                                      timeout => $o{timeout}));
}

sub get {
    my ($self, $path, %o) = @_;
    return $self->request(method => 'GET', path => $path, %o);
}

# post($path, $body or \%json, %opts): Content-Type application/json unless
# type => is given
sub post {
    my ($self, $path, $body, %o) = @_;
    $body = encode_json($body) if ref $body;
    return $self->request(method => 'POST', path => $path, body => $body,
                          type => 'application/json', %o);
}

# a chat request; max_tokens 16 unless given, so that a real model answers
# quickly (the fake ignores it)
sub chat_body {
    my (%o) = @_;
    my $content = delete $o{content} // 'hello';
    $o{max_tokens} = 16 unless exists $o{max_tokens};
    delete $o{max_tokens} unless defined $o{max_tokens};
    return encode_json({
        messages => [ { role => 'user', content => $content } ],
        %o,
    });
}

# opens a connection, sends a chat request, returns the socket
sub stream_open {
    my ($self, $body, %o) = @_;
    my $s = $self->connect_http;
    print $s build_request(method => 'POST', path => '/v1/chat/completions',
                           type => 'application/json', body => $body, %o);
    return $s;
}

# data: payloads of an SSE body, in order
sub sse_events {
    my ($body) = @_;
    return ($body =~ /^data: (.*?)\n\n/msg);
}

# the text a stream carried in its deltas
sub sse_text {
    my ($body) = @_;
    my $text = '';
    for my $e (sse_events($body)) {
        next if $e eq '[DONE]';
        my $j = eval { decode_json($e) } or next;
        for my $c (@{ $j->{choices} // [] }) {
            $text .= $c->{delta}{content} // '';
        }
    }
    return $text;
}

# python_client_check($script): runs t/$script (an official-SDK client
# check printing "ok ..."/"FAIL ..." lines) against nginx + the real engine,
# one TAP test per line plus its exit status.  Skips without the real
# engine or without a GLM_TEST_PYTHON (default python3) that has `openai`.
sub python_client_check {
    my ($script) = @_;
    my $t = GlmTest->new;
    my $py = $ENV{GLM_TEST_PYTHON} // 'python3';

    Test::More::plan(skip_all => 'needs the real engine (GLM_TEST_ENGINE)')
        if $t->fake;
    Test::More::plan(skip_all => "$py has no openai package")
        unless system("$py -c 'import openai' >/dev/null 2>&1") == 0;

    $t->run(server => $LOCATIONS);

    my $out = `$py $REPO/t/$script http://127.0.0.1:${\ $t->port } 2>&1`;
    my $rc = $? >> 8;
    Test::More::diag($out) if $rc;
    for my $line (split /\n/, $out) {
        Test::More::ok($line =~ /^ok /, $line) if $line =~ /^(ok|FAIL) /;
    }
    Test::More::is($rc, 0, "$script exits 0");

    $t->finish;
    Test::More::done_testing();
}

1;
