#!/usr/bin/perl
# Server for tests/test_lifetime.py: AnyEvent::Handle's closure-cycle idiom.
#
# usage: perl cycle_server.pl
#
# Listens on 127.0.0.1 (an ephemeral port, printed first as "port N").  For
# every connection the accept callback makes a handle whose on_error/on_eof
# closures refer to the handle itself and returns without storing it
# anywhere: only that cycle keeps the handle.  It answers the first line
# with "echo: LINE\n" and reads on; on EOF it prints "eof" and destroys the handle (which
# breaks the cycle), on an error "error MESSAGE".  Exits when stdin closes.

use strict;
use warnings;
use AnyEvent;
use AnyEvent::Handle;
use AnyEvent::Socket;

alarm 60;    # never outlive a broken test run
$| = 1;

my $port;
my $server = tcp_server "127.0.0.1", 0, sub {
   my ($fh) = @_;

   my $hdl; $hdl = AnyEvent::Handle->new (
      fh       => $fh,
      on_error => sub { print "error $_[2]\n"; $hdl->destroy },
      on_eof   => sub { print "eof\n"; $hdl->destroy },
   );
   $hdl->push_read (line => sub {
      my ($h, $line) = @_;
      $h->push_write ("echo: $line\n");
      $h->on_read (sub { });    # read on, to see the EOF
   });
   # returns: $hdl goes out of scope, the handle lives on through the cycle
}, sub {
   $port = $_[2];
   128
};
print "port $port\n";    # listening now

my $stdin = AE::io *STDIN, 0, sub { exit 0 };
AE::cv->recv;
