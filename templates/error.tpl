<section class="card error-page">
  <h1>{{error_status}}</h1>
  <p>{{message}}</p>
  <p><a href="/">Back to the dashboard</a></p>
</section>
