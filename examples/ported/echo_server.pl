#!/usr/bin/perl
# A line echo server on tcp_server and AnyEvent::Handle.  Twin: echo_server.py.
# usage: perl echo_server.pl [HOST [PORT]]   (default 127.0.0.1, any free port)
# Prints "listening on HOST:PORT" first; SIGTERM or SIGINT stops it.
use strict;
use warnings;
use AnyEvent;
use AnyEvent::Socket;
use AnyEvent::Handle;

$| = 1; # print each line at once

my $host = shift // "127.0.0.1";
my $port = shift // 0;

my %clients; # the open connections: this hash is what keeps each handle alive
my $served = 0;

# a client is done: say why, forget it
sub gone {
   my ($hdl, $why) = @_;
   print "$hdl->{name}: $why after $hdl->{lines} lines\n";
   delete $clients{$hdl};
   $hdl->destroy;
}

# one line arrived: answer it, or say goodbye
sub got_line {
   my ($hdl, $line) = @_;
   if ($line eq "quit") {
      $hdl->push_write ("bye\015\012");
      $hdl->push_shutdown; # EOF to the client once "bye" is written
      return;
   }
   ++$hdl->{lines};
   $hdl->push_write ("$hdl->{lines}: $line\015\012");
}

my $server = tcp_server $host, $port, sub {
   my ($fh, $peerhost, $peerport) = @_;

   my $hdl = new AnyEvent::Handle
      fh       => $fh,
      rbuf_max => 1024, # a longer line is a fatal error (ENOSPC)
      on_error => sub { gone $_[0], "error ($_[2])" },
      on_eof   => sub { gone $_[0], "eof" };
   $hdl->{name}  = "client " . ++$served; # our own data, kept in the handle
   $hdl->{lines} = 0;
   $clients{$hdl} = $hdl;
   print "$hdl->{name}: connected\n";

   $hdl->push_write ("hello $hdl->{name}\015\012");

   # whenever data arrives, put a line read at the front of the queue
   $hdl->on_read (sub {
      shift->unshift_read (line => \&got_line);
   });
}, sub {
   (undef, $host, $port) = @_; # the address really bound (port 0: any free one)
   0 # the default listen queue
};
print "listening on $host:$port\n";

# run until a signal asks us to stop
my $stop = AE::cv;
my $sigterm = AE::signal TERM => sub { $stop->send ("TERM") };
my $sigint  = AE::signal INT  => sub { $stop->send ("INT") };
my $signal = $stop->recv;

undef $server; # stop listening
print "SIG$signal: stopping, ", scalar keys %clients, " clients still connected\n";
