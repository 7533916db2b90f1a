#!/usr/bin/perl
# Echo server on Perl's AnyEvent::Handle, for bench/echo.py.
# usage: perl echo_server.pl raw|line
# Listens on 127.0.0.1 (any free port, backlog 4096) and prints the port.
use strict;
use warnings;
use AnyEvent;
use AnyEvent::Socket;
use AnyEvent::Handle;

my $mode = shift // "raw";
my (%handles, $port);
$| = 1;

sub gone { delete $handles{$_[0]}; $_[0]->destroy }

sub echo_line { $_[0]->push_write("$_[1]$_[2]") }

my $server = tcp_server "127.0.0.1", 0, sub {
    my ($fh) = @_;
    my $hdl = AnyEvent::Handle->new(
        fh => $fh, no_delay => 1, on_error => \&gone, on_eof => \&gone,
        on_read => $mode eq "line"
            ? sub { $_[0]->push_read(line => \&echo_line) }
            : sub { $_[0]->push_write($_[0]{rbuf}); $_[0]{rbuf} = "" },
    );
    $handles{$hdl} = $hdl;
}, sub {
    $port = $_[2];
    4096
};
print "$port\n";

AE::cv->recv;
