<#
.SYNOPSIS
  hostinfo for Windows guests: ask the host (hostinfo-qemu guest protocol 1.0).
.DESCRIPTION
  The counterpart of the POSIX client `hostinfo` beside it, for Windows PowerShell 5.1 and
  PowerShell 7. Port: COM2 (isa-serial, hostinfo-qemu's default); -Virtio for
  \\.\Global\org.hostinfo.0 (virtio-win's vioserial driver); -Device for another.
    .\hostinfo.ps1 physcpus                 the reply text of one request
    .\hostinfo.ps1 -Json [ITEM ...]         every item (or those named) as one document;
                   -Prometheus, -Influx     likewise, in base units (bytes, seconds, ratios)
  Exit status as the shell client's: 0 answered 200 (documents: every item the host serves), 1
  another status (the reply on stderr), 2 usage, 3 no port, 4 no reply within -Timeout.

  NOT RUN BY THIS PROJECT'S TESTS: there is no PowerShell on the machines that run them. What can
  be checked is shared as data: the metric table below is compared line for line with the shell
  client's, and for each testdata\<case>.replies this script must print what the shell client
  does (testdata\<case>.json, .prom, .influx). On Windows, check it with:
    foreach ($c in 'items', 'limited', 'quoting', 'denied') { foreach ($m in 'Json', 'Prometheus', 'Influx') {
      $want = Get-Content -Raw "testdata\$c.$(@{Json='json'; Prometheus='prom'; Influx='influx'}[$m])"
      $got = (& .\hostinfo.ps1 -Replies "testdata\$c.replies" "-$m" 2>$null | Out-String) -replace "`r", ''
      if ($got -ne $want) { "DIFFERS: $c $m" } } }
  -Virtio under Windows PowerShell 5.1 needs .NET Framework 4.6.2 or later (earlier FileStreams
  refuse \\.\ device paths). Unlike the shell client it asks ALL every time (no memo of a 404).
  Why: .NET's SerialPort.ReadTimeout defaults to infinite (a script without it hangs when the host
  does not answer); NewLine "`n" is the protocol's; a named mutex queues concurrent callers, as
  flock does for the shell client; after a timeout the next call resynchronises with a PING nonce.
#>
[CmdletBinding()]
param(
  [string]$Device,
  [switch]$Virtio,
  [double]$Timeout = 5,
  [switch]$Json,
  [switch]$Prometheus,
  [switch]$Influx,
  [string]$Replies,
  [Parameter(Position = 0, ValueFromRemainingArguments = $true)][string[]]$Words = @()
)
Set-StrictMode -Version 2
$ErrorActionPreference = 'Stop'
$Invariant = [Globalization.CultureInfo]::InvariantCulture

# metric table begin
$Metrics = @{
  'physcpus' = 'num|host_cpus|cpus|Host logical CPUs online'
  'physcores' = 'num|host_cores|cores|Host physical CPU cores'
  'sockets' = 'num|host_sockets|sockets|Host CPU sockets'
  'cpumodel' = 'info:model|host_cpu_info|cpu_model|Host CPU model'
  'cpumhz' = 'scale:1000000|host_cpu_nominal_hertz|cpu_nominal_hertz|Host CPU nominal frequency in hertz'
  'loadavg' = 'list|host_load1,host_load5,host_load15|load1,load5,load15|Host load average over 1, 5 and 15 minutes'
  'cpuusage' = 'pctpairs:mode|host_cpu_usage_ratio|cpu_usage_%_ratio|Share of host CPU time per mode over the host sample interval'
  'pressure' = 'pctpairs:resource|host_pressure_ratio|pressure_%_ratio|Host PSI some avg10 per resource'
  'physmem' = 'kbpairs|host_memory_%_bytes|memory_%_bytes|Host memory in bytes'
  'swap' = 'kbpairs|host_swap_%_bytes|swap_%_bytes|Host swap in bytes'
  'uptime' = 'num|host_uptime_seconds|uptime_seconds|Host uptime in seconds'
  'hosttime' = 'num|host_time_seconds|time_seconds|Host clock in seconds since the epoch'
  'hostname' = 'info:hostname|host_hostname_info|hostname|Host name'
  'kernel' = 'info:release|host_kernel_info|kernel_release|Host kernel release'
  'hypervisor' = 'info:version|vm_hypervisor_info|hypervisor|QEMU version of this VM'
  'vcpudelay' = 'pct|vm_vcpu_delay_ratio|vcpu_delay_ratio|Share of the interval this VM vCPUs waited to run'
  'vmcount' = 'num|host_vms|vms|VMs on this host served by hostinfo'
  'vmcputime' = 'counter|vm_cpu_seconds_total|cpu_seconds|CPU time of this VM QEMU process, user and system, in seconds'
  'vmcpuusage' = 'pct|vm_cpu_usage_ratio|cpu_usage_ratio|Share of this VM vCPU capacity used over the last interval'
  'vcpus' = 'num|vm_vcpus|vcpus|vCPUs of this VM'
  'vmmem' = 'kbpairs|vm_memory_%_bytes|memory_%_bytes|Memory of this VM in bytes'
  'cpulimit' = 'num|vm_cpu_limit_cpus|cpu_limit_cpus|CPU quota of this VM cgroup in CPUs'
  'memlimit' = 'kb|vm_memory_limit_bytes|memory_limit_bytes|Memory limit of this VM cgroup in bytes'
  'vmname' = 'info:name|vm_name_info|name|Name the host gives this VM'
  'vmuuid' = 'info:uuid|vm_uuid_info|uuid|UUID the host gives this VM'
  'pagedin' = 'kbcounter|host_paged_in_bytes_total|paged_in_bytes|Host bytes read from block devices through the page cache since boot'
  'pagedout' = 'kbcounter|host_paged_out_bytes_total|paged_out_bytes|Host bytes written to block devices since boot'
  'hostcputime' = 'counter|host_cpu_busy_seconds_total|cpu_busy_seconds|Host CPU seconds busy since boot, summed over CPUs'
  'vmsession' = 'info:session|vm_session_info|session|Session of this VM, changes when its QEMU process does'
}
# metric table end

function Fail([int]$Code, [string]$Message) { [Console]::Error.WriteLine("hostinfo: $Message"); exit $Code }
$Clock = [Diagnostics.Stopwatch]::StartNew()
$LimitMs = [int]($Timeout * 1000)
function Left { [int]($LimitMs - $Clock.ElapsedMilliseconds) }

# ------------------------------------------------------------------ the port
$Port = $null; $Pending = ''; $Asked = ''
$Name = if ($Device) { $Device } elseif ($Virtio) { '\\.\Global\org.hostinfo.0' } else { 'COM2' }
$Marker = Join-Path $env:ProgramData ('hostinfo-qemu\' + ($Name -replace '[\\.:]', '_') + '.resync')
function Open-Port {
  if ($Replies) { $script:Port = [IO.StreamReader]::new($Replies); return }
  $script:Mutex = [Threading.Mutex]::new($false, 'Global\hostinfo-qemu-port')
  try { if (-not $Mutex.WaitOne([Math]::Max(0, (Left)))) { Fail 4 "$Name stayed busy (another caller) for the whole $Timeout s" } }
  catch [Threading.AbandonedMutexException] { } # its holder died: the mutex is ours now
  while ($true) {
    try {
      if ($Name -like 'COM*') {
        $sp = [IO.Ports.SerialPort]::new($Name, 115200)
        $sp.NewLine = "`n"; $sp.WriteTimeout = [Math]::Max(1, (Left)); $sp.Open()
        $script:Port = $sp
      } else {
        $script:Port = [IO.FileStream]::new($Name, 'Open', 'ReadWrite', 'None', 4096, [IO.FileOptions]::Asynchronous)
      }
      return
    } catch [IO.FileNotFoundException], [IO.IOException] {
      if (-not (Test-Path -LiteralPath $Name) -and $Name -notlike 'COM*') { Fail 3 "no hostinfo port $Name" }
      if ((Left) -le 50) { Fail 3 "cannot open ${Name}: $($_.Exception.Message)" }
      Start-Sleep -Milliseconds 50
    }
  }
}
function Send-Line([string]$Line) {
  $script:Asked = ($Line -split ' ')[0]
  if ($Replies) { return }
  if (-not (Test-Path -LiteralPath $Marker)) { $null = New-Item -Force -ItemType File -Path $Marker -ErrorAction SilentlyContinue }
  $bytes = [Text.Encoding]::ASCII.GetBytes("$Line`n")
  if ($Port -is [IO.Ports.SerialPort]) { $Port.Write($bytes, 0, $bytes.Length) } else { $Port.Write($bytes, 0, $bytes.Length); $Port.Flush() }
}
function Read-PortLine { # one line before the deadline, or $null
  if ($Replies) { return $Port.ReadLine() }
  if ($Port -is [IO.Ports.SerialPort]) {
    $Port.ReadTimeout = [Math]::Max(1, (Left))
    try { return $Port.ReadLine() } catch [TimeoutException] { return $null }
  }
  while ($script:Pending.IndexOf("`n") -lt 0) {
    $buffer = New-Object byte[] 1024
    $task = $Port.ReadAsync($buffer, 0, $buffer.Length)
    if (-not $task.Wait([Math]::Max(1, (Left)))) { return $null }
    if ($task.Result -eq 0) { Start-Sleep -Milliseconds 50; if ((Left) -le 0) { return $null }; continue }
    $script:Pending += [Text.Encoding]::ASCII.GetString($buffer, 0, $task.Result)
  }
  $at = $Pending.IndexOf("`n"); $line = $Pending.Substring(0, $at); $script:Pending = $Pending.Substring($at + 1)
  return $line
}
# The next reply: @{Status; Text; Line}, or $null when none came before the deadline.
function Read-Reply {
  while ((Left) -gt 0) {
    $line = Read-PortLine
    if ($null -eq $line) { if ($Replies) { Fail 70 "${Replies}: no recorded reply for '$Asked'" }; return $null }
    $line = $line.TrimEnd("`r")
    if ($Replies) {
      if ($line -eq '' -or $line.StartsWith('#')) { continue }
      $word, $line = $line -split ' ', 2
      if ($word -ne $Asked) { Fail 70 "${Replies}: the client asked '$Asked', the next recorded reply is for '$word'" }
    }
    if ($line -match '^1\.[0-9] ([0-9]{3})(?: (.*))?$') { return @{ Status = $Matches[1]; Text = [string]$Matches[2]; Line = $line } }
  }
  return $null
}
# Waits out a 429 whose retry-after ends before the deadline; $false when it does not.
function Wait-429($Reply) {
  if ($Reply.Text -notmatch 'retry after ([0-9]+) ms') { return $false }
  $ms = [int]$Matches[1] + 10
  if ($ms -ge (Left)) { return $false }
  Start-Sleep -Milliseconds $ms; return $true
}
function Ask([string]$Request) {
  while ($true) {
    Send-Line $Request
    $reply = Read-Reply
    if ($null -eq $reply -or $reply.Status -ne '429' -or -not (Wait-429 $reply)) { return $reply }
  }
}
function Sync-Port { # after a caller timed out: PING a nonce, drop every line up to its reply
  if ($Replies -or -not (Test-Path -LiteralPath $Marker)) { return }
  $Port.Write([byte[]]@(10), 0, 1)
  while ($true) {
    $nonce = "resync-$PID-$($Clock.ElapsedMilliseconds)"
    Send-Line "ping $nonce"
    do {
      $reply = Read-Reply
      if ($null -eq $reply) { Fail 4 "no reply within $Timeout s from $Name (resynchronising after an earlier timeout)" }
      if (($reply.Status -eq '200' -and $reply.Text -eq $nonce) -or $reply.Text -eq 'hostinfo is not enabled for this VM') { return }
    } until ($reply.Status -eq '429')
    if (-not (Wait-429 $reply)) { Fail 1 $reply.Line }
  }
}
function Done([int]$Code) { if (-not $Replies -and $Code -ne 4) { Remove-Item -LiteralPath $Marker -ErrorAction SilentlyContinue }; exit $Code }

# ------------------------------------------------------------------ documents (as the shell client's awk)
function IsNum([string]$s) { $s -match '^-?(0|[1-9][0-9]*)(\.[0-9]+)?$' }
function Quote([string]$s) { '"' + ($s -replace '([\\"])', '\$1') + '"' }
function Ratio([string]$s) {
  $ip, $fp = $s -split '\.', 2; if ($null -eq $fp) { $fp = '' }
  $ip = $ip.PadLeft(3, '0')
  $r = $ip.Substring(0, $ip.Length - 2) + '.' + $ip.Substring($ip.Length - 2) + $fp
  $r = ($r -replace '^0+', '') -replace '0+$', ''
  if ($r.StartsWith('.')) { $r = '0' + $r }
  $r.TrimEnd('.')
}
function Scaled([string]$v, [decimal]$by) { [decimal]::Round([decimal]::Parse($v, $Invariant) * $by, 0).ToString('0', $Invariant) }
function Explode([string]$s, $into) { # ALL's NAME=VALUE list
  foreach ($m in [regex]::Matches($s, '([^ =]+)=(?:"((?:[^"\\]|\\.)*)"|([^ ]*))')) {
    if ($m.Groups[2].Success) { $into[$m.Groups[1].Value] = @{ Ok = $true; Text = ($m.Groups[2].Value -replace '\\(.)', '$1') } }
    else { $into[$m.Groups[1].Value] = @{ Ok = ($m.Groups[3].Value -ne 'unavailable'); Text = $m.Groups[3].Value } }
  }
}
function JsonValue([string]$item, [string]$text) {
  if ($Metrics.ContainsKey($item) -and $Metrics[$item].StartsWith('info')) { return Quote $text }
  $parts = @($text -split ' ' | Where-Object { $_ -ne '' })
  if ($parts.Count -eq 1 -and (IsNum $text)) { return $text }
  if ($parts.Count -gt 1 -and @($parts | Where-Object { -not (IsNum $_) }).Count -eq 0) { return '[' + ($parts -join ',') + ']' }
  if ($parts.Count -gt 0 -and @($parts | Where-Object { $_ -notmatch '^[a-z0-9_]+=[^=]*$' }).Count -eq 0) {
    return '{' + (($parts | ForEach-Object { $k, $v = $_ -split '=', 2; (Quote $k) + ':' + $(if (IsNum $v) { $v } else { Quote $v }) }) -join ',') + '}'
  }
  Quote $text
}
# Each metric of an item: @{Name; Labels; Value; Field; FieldValue}
function MetricsOf([string]$item, [string]$text) {
  if (-not $Metrics.ContainsKey($item)) { return }
  $kind, $name, $field, $help = $Metrics[$item] -split '\|'
  $kind, $arg = $kind -split ':', 2
  $parts = @($text -split ' ' | Where-Object { $_ -ne '' })
  $one = $parts.Count -eq 1 -and (IsNum $text)
  switch ($kind) {
    'num' { if ($one) { @{ Name = $name; Labels = ''; Value = $text; Field = $field; FieldValue = $(if ($text -match '^[0-9]+$') { "${text}i" } else { $text }) } } }
    'scale' { if ($one) { $v = Scaled $text $arg; @{ Name = $name; Labels = ''; Value = $v; Field = $field; FieldValue = "${v}i" } } }
    'kb' { if ($one) { $v = Scaled $text 1024; @{ Name = $name; Labels = ''; Value = $v; Field = $field; FieldValue = "${v}i" } } }
    'counter' { if ($one) { @{ Name = $name; Labels = ''; Value = $text; Field = $field; FieldValue = $text } } }
    'kbcounter' { if ($one) { $v = Scaled $text 1024; @{ Name = $name; Labels = ''; Value = $v; Field = $field; FieldValue = "${v}i" } } }
    'pct' { if ($one) { $v = Ratio $text; @{ Name = $name; Labels = ''; Value = $v; Field = $field; FieldValue = $v } } }
    'info' { @{ Name = $name; Labels = $arg + '=' + (Quote $text); Value = '1'; Field = $field; FieldValue = (Quote $text) } }
    'list' {
      $names = $name -split ','; $fields = $field -split ','
      for ($i = 0; $i -lt $parts.Count -and $i -lt $names.Count; $i++) {
        if (IsNum $parts[$i]) { @{ Name = $names[$i]; Labels = ''; Value = $parts[$i]; Field = $fields[$i]; FieldValue = $parts[$i] } }
      }
    }
    default {
      foreach ($p in $parts) {
        $k, $v = $p -split '=', 2
        if ($null -eq $v -or -not (IsNum $v)) { continue }
        $f = $field.Replace('%', $k)
        if ($kind -eq 'pctpairs') { $r = Ratio $v; @{ Name = $name; Labels = "$arg=""$k"""; Value = $r; Field = $f; FieldValue = $r } }
        else { $b = Scaled $v 1024; @{ Name = $name.Replace('%', $k); Labels = ''; Value = $b; Field = $f; FieldValue = "${b}i" } }
      }
    }
  }
}
function Emit($Answers, [int]$Code) {
  $out = New-Object Text.StringBuilder
  if ($Json) {
    $pairs = foreach ($item in $Answers.Keys) { (Quote $item) + ':' + $(if ($Answers[$item].Ok) { JsonValue $item $Answers[$item].Text } else { 'null' }) }
    $null = $out.Append('{' + (@($pairs) -join ',') + "}`n")
  } else {
    $helped = @{}; $hostFields = @(); $vmFields = @()
    foreach ($item in $Answers.Keys) {
      if (-not $Answers[$item].Ok) { continue }
      $kind = ($Metrics[$item] -split '\|')[0]; $help = ($Metrics[$item] -split '\|')[3]
      foreach ($m in @(MetricsOf $item $Answers[$item].Text)) {
        if ($Prometheus) {
          $n = 'hostinfo_' + $m.Name
          if (-not $helped.ContainsKey($n)) { $helped[$n] = 1; $null = $out.Append("# HELP $n $help (item $item).`n# TYPE $n $(if ($kind -eq 'counter' -or $kind -eq 'kbcounter') { 'counter' } else { 'gauge' })`n") }
          $null = $out.Append($n + $(if ($m.Labels) { '{' + $m.Labels + '}' } else { '' }) + ' ' + $m.Value + "`n")
        } elseif ($m.Name.StartsWith('vm_')) { $vmFields += $m.Field + '=' + $m.FieldValue }
        else { $hostFields += $m.Field + '=' + $m.FieldValue }
      }
    }
    if ($Influx -and $hostFields) { $null = $out.Append('hostinfo_host ' + ($hostFields -join ',') + "`n") }
    if ($Influx -and $vmFields) { $null = $out.Append('hostinfo_vm ' + ($vmFields -join ',') + "`n") }
  }
  [Console]::Out.Write($out.ToString())
  Done $Code
}

# ------------------------------------------------------------------ main
if ($Timeout -le 0) { Fail 2 '-Timeout wants seconds, e.g. 2.5' }
$document = $Json -or $Prometheus -or $Influx
if (-not $document -and $Words.Count -eq 0) { Fail 2 'usage: hostinfo.ps1 [-Device D | -Virtio] [-Timeout S] COMMAND [ARG] | -Json|-Prometheus|-Influx [ITEM ...]' }
Open-Port
Sync-Port
if (-not $document) {
  $request = $Words[0] + (($Words | Select-Object -Skip 1 | ForEach-Object { if ($_ -match '^[^ "\\]+$') { " $_" } else { ' ' + (Quote $_) } }) -join '')
  $reply = Ask $request
  if ($null -eq $reply) { Fail 4 "no reply to '$request' within $Timeout s from $Name" }
  if ($reply.Status -eq '200') { [Console]::Out.Write($reply.Text + "`n"); Done 0 }
  [Console]::Error.WriteLine("hostinfo: $($reply.Line)"); Done 1
}
$answers = [ordered]@{}
$items = @($Words)
if ($items.Count -eq 0) {
  $reply = Ask 'all' # one token for every item, where the host has ALL
  if ($null -eq $reply) { Emit $answers 4 }
  if ($reply.Status -eq '200') { Explode $reply.Text $answers; Emit $answers 0 }
  if ($reply.Status -eq '429') { [Console]::Error.WriteLine("hostinfo: all: $($reply.Line)"); Emit $answers 1 }
  $reply = Ask 'help'
  if ($null -eq $reply) { Emit $answers 4 }
  if ($reply.Status -ne '200') { [Console]::Error.WriteLine("hostinfo: help: $($reply.Line)"); Emit $answers 1 }
  $items = @($reply.Text -split ' ' | Where-Object { $_ -and @('ping', 'help', 'version', 'all') -notcontains $_ })
}
$code = 0
foreach ($item in $items) {
  if ($code -ne 0) { $answers[$item] = @{ Ok = $false; Text = '' }; continue }
  $reply = Ask $item
  if ($null -eq $reply) { [Console]::Error.WriteLine("hostinfo: ${item}: no reply within $Timeout s from $Name"); $code = 4; $answers[$item] = @{ Ok = $false; Text = '' }; continue }
  $answers[$item] = @{ Ok = ($reply.Status -eq '200'); Text = $reply.Text }
  if ($reply.Status -ne '200') { [Console]::Error.WriteLine("hostinfo: ${item}: $($reply.Line)") }
  if ($reply.Status -eq '429') { $code = 1 } # its wait does not fit: the items after it would get the same
}
Emit $answers $code
